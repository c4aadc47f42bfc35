"""Live ticks: one line per symbol on Textual's Line API, repainting only the lines that changed.

A DataTable repaints every visible cell on any change; here each line is a Strip cached by what
it shows, so a poll that moves one symbol rebuilds and repaints one line (Toolong's approach).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mikrobot_tui.store.queries import SymbolRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._format import direction, fmt_price, sparkline

# (label, width, justify); the sparkline takes what is left of the line.
FIXED = (("Symbol", 8, "<"), ("Bid", 10, ">"), ("Ask", 10, ">"), ("Spr", 5, ">"), ("Chg%", 6, ">"))
GAP = 1
FIXED_WIDTH = sum(w + GAP for _, w, _ in FIXED)


@dataclass(frozen=True, slots=True)
class TickLine:
    """What one line shows; equal lines render to the same Strip."""

    symbol: str
    bid: str
    ask: str
    spread: str
    change: str
    change_dir: str  # up, down, flat
    flash: str  # up, down, or "" when the price did not move since the last poll
    spark: tuple[float, ...]


def tick_line(row: SymbolRow, previous: SymbolRow | None) -> TickLine:
    moved = previous is not None and (row.bid, row.ask) != (previous.bid, previous.ask)
    mid_move = (row.bid + row.ask) - (previous.bid + previous.ask) if moved and previous else 0.0
    return TickLine(
        symbol=row.symbol,
        bid=fmt_price(row.symbol, row.bid),
        ask=fmt_price(row.symbol, row.ask),
        spread=f"{row.spread_pips:.1f}",
        change=f"{row.change_pct:+.2f}",
        change_dir=direction(round(row.change_pct, 2)),
        flash=direction(mid_move) if moved and mid_move else "",
        spark=tuple(row.spark),
    )


class TicksPane(Dated, ScrollView, can_focus=True):
    """Bid, ask, spread, change and a sparkline per symbol; the header line stays on top."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "ticks--header",
        "ticks--symbol",
        "ticks--up",
        "ticks--down",
        "ticks--flash-up",
        "ticks--flash-down",
        "ticks--muted",
    }
    DEFAULT_CSS = """
    TicksPane { height: auto; max-height: 100%; }
    TicksPane > .ticks--header { color: $text-muted; text-style: bold; }
    TicksPane > .ticks--symbol { text-style: bold; }
    TicksPane > .ticks--up { color: $success; }
    TicksPane > .ticks--down { color: $error; }
    TicksPane > .ticks--flash-up { color: $text; background: $success 45%; }
    TicksPane > .ticks--flash-down { color: $text; background: $error 45%; }
    TicksPane > .ticks--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Live ticks"
        self._rows: dict[str, SymbolRow] = {}
        self._lines: list[TickLine] = []
        self._cache: LRUCache[tuple[TickLine, int], Strip] = LRUCache(256)
        self.builds: Counter[str] = Counter()  # Strips rendered from scratch, by symbol

    # -- data ---------------------------------------------------------------------------------
    def set_as_of(self, note: str) -> None:
        super().set_as_of(note)
        title = "Last ticks" if note else "Live ticks"  # no engine: nothing here is live
        if self.border_title != title:
            self.border_title = title

    def show(self, rows: list[SymbolRow]) -> int:
        """Take a new poll's rows; refresh only the lines whose content changed."""
        lines = [tick_line(r, self._rows.get(r.symbol)) for r in rows]
        self._rows = {r.symbol: r for r in rows}
        old, self._lines = self._lines, lines
        if len(old) != len(lines):
            self.virtual_size = Size(0, len(lines) + 1)
            self.refresh()
            return len(lines)
        changed = [i for i, (a, b) in enumerate(zip(old, lines, strict=True)) if a != b]
        for i in changed:
            self.refresh_line(i + 1)
        return len(changed)

    def line_text(self, symbol: str) -> str:
        """The text a trader sees on the symbol's line (rendered through the same cache)."""
        for line in self._lines:
            if line.symbol == symbol:
                return self._strip(line, max(self.size.width, FIXED_WIDTH + 10)).text
        raise KeyError(symbol)

    def flash_of(self, symbol: str) -> str:
        return next((line.flash for line in self._lines if line.symbol == symbol), "")

    # -- painting -----------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"ticks--{name}", partial=True)

    def _header(self, width: int) -> Strip:
        style = self._style("header")
        text = "".join(f"{label:{j}{w}}" + " " * GAP for label, w, j in FIXED) + "Trend"
        return Strip([Segment(text[:width], style)]).extend_cell_length(width)

    def _strip(self, line: TickLine, width: int) -> Strip:
        key = (line, width)
        strip = self._cache.get(key)
        if strip is not None:
            return strip
        self.builds[line.symbol] += 1
        gap = Segment(" " * GAP)
        flash = self._style(f"flash-{line.flash}") if line.flash else None
        change = self._style(line.change_dir) if line.change_dir != "flat" else Style()
        spark_dir = direction(line.spark[-1] - line.spark[0]) if len(line.spark) > 1 else "flat"
        spark_style = self._style(spark_dir) if spark_dir != "flat" else self._style("muted")
        (_, w_sym, _), (_, w_bid, _), (_, w_ask, _), (_, w_spr, _), (_, w_chg, _) = FIXED
        segments = [
            Segment(f"{line.symbol:<{w_sym}}"[:w_sym], self._style("symbol")),
            gap,
            Segment(f"{line.bid:>{w_bid}}", flash),
            gap,
            Segment(f"{line.ask:>{w_ask}}", flash),
            gap,
            Segment(f"{line.spread:>{w_spr}}"),
            gap,
            Segment(f"{line.change:>{w_chg}}", change),
            gap,
            Segment(sparkline(line.spark, max(0, width - FIXED_WIDTH)), spark_style),
        ]
        strip = Strip(segments).extend_cell_length(width).crop(0, width)
        strip = strip.apply_style(self.rich_style)
        self._cache[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._header(width).apply_style(base)
        index = y - 1 + self.scroll_offset.y
        if index < len(self._lines):
            return self._strip(self._lines[index], width)
        if not self._lines and y == 1:
            empty = Strip([Segment("no ticks yet", self._style("muted"))])
            return empty.extend_cell_length(width).apply_style(base)
        return Strip.blank(width, base)
