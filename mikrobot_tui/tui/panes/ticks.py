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

# (label, widest, justify); each column is as wide as its widest cell (at least its label),
# up to `widest`, and the sparkline takes what is left of the line.
FIXED = (("Symbol", 8, "<"), ("Bid", 10, ">"), ("Ask", 10, ">"), ("Spr", 5, ">"), ("Chg%", 6, ">"))
GAP = 1
FIXED_WIDTH = sum(w + GAP for _, w, _ in FIXED)
# A narrow pane (half an 80-column terminal) drops the spread before the trend goes under this
MIN_TREND = 5


@dataclass(frozen=True, slots=True)
class Layout:
    """Column widths for one pane width: symbol, bid and ask, spread (0: not shown), change;
    `compact` prices drop their thousands separators."""

    symbol: int
    price: int
    spread: int
    change: int
    compact: bool = False

    @property
    def fixed(self) -> int:
        shown = (self.symbol, self.price, self.price, self.spread, self.change)
        return sum(w + GAP for w in shown if w)


def layout(lines: list[TickLine], width: int) -> Layout:
    """The widths the lines need. When the trend would get under MIN_TREND the spread goes
    first, then the prices' thousands separators: bid, ask, change and trend stay."""

    def need(label_width: int, widest: int, cells: list[str]) -> int:
        return min(widest, max([label_width, *map(len, cells)]))

    (_, w_sym, _), (_, w_price, _), _, (_, w_spr, _), (_, w_chg, _) = FIXED
    prices = [v for x in lines for v in (x.bid, x.ask)]
    full = Layout(
        need(6, w_sym, [x.symbol for x in lines]),
        need(3, w_price, prices),
        need(3, w_spr, [x.spread for x in lines]),
        need(4, w_chg, [x.change for x in lines]),
    )
    if width - full.fixed >= MIN_TREND:
        return full
    no_spread = Layout(full.symbol, full.price, 0, full.change)
    if width - no_spread.fixed >= MIN_TREND:
        return no_spread
    compact = need(3, w_price, [p.replace(",", "") for p in prices])
    return Layout(full.symbol, compact, 0, full.change, compact=True)


def _price(text: str, at: Layout) -> str:
    return f"{text.replace(',', '') if at.compact else text:>{at.price}}"


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
    TicksPane { height: auto; max-height: 100%; scrollbar-size-vertical: 1; }
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
        self._at: tuple[list[TickLine], int, Layout] | None = None  # the lines' last layout

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
        width = self.size.width
        if len(old) != len(lines) or layout(old, width) != layout(lines, width):
            # a new widest cell moves every column: every line is painted again
            self.virtual_size = Size(0, len(lines) + 1)
            self.refresh()
            return len(lines)
        changed = [i for i, (a, b) in enumerate(zip(old, lines, strict=True)) if a != b]
        for i in changed:
            self.refresh_line(i + 1)
        return len(changed)

    def line_text(self, symbol: str, width: int | None = None) -> str:
        """The text a trader sees on the symbol's line (rendered through the same cache), at
        the pane's width or `width`."""
        for line in self._lines:
            if line.symbol == symbol:
                return self._strip(line, width or max(self.size.width, FIXED_WIDTH + 10)).text
        raise KeyError(symbol)

    def header_text(self, width: int | None = None) -> str:
        return self._header(width or self.size.width).text

    def flash_of(self, symbol: str) -> str:
        return next((line.flash for line in self._lines if line.symbol == symbol), "")

    # -- painting -----------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"ticks--{name}", partial=True)

    def _layout(self, width: int) -> Layout:
        """The lines' layout at `width`, computed once per poll and width: each painted line
        asks for it, and it reads every line."""
        at = self._at
        if at is None or at[0] is not self._lines or at[1] != width:
            at = self._at = (self._lines, width, layout(self._lines, width))
        return at[2]

    def _header(self, width: int) -> Strip:
        style = self._style("header")
        at = self._layout(width)
        widths = (at.symbol, at.price, at.price, at.spread, at.change)
        text = "".join(
            f"{label:{j}{w}}" + " " * GAP
            for (label, _, j), w in zip(FIXED, widths, strict=True)
            if w
        )
        text += "Trend"
        return Strip([Segment(text[:width], style)]).extend_cell_length(width)

    def _strip(self, line: TickLine, width: int) -> Strip:
        at = self._layout(width)
        key = (line, width, at)
        strip = self._cache.get(key)
        if strip is not None:
            return strip
        self.builds[line.symbol] += 1
        gap = Segment(" " * GAP)
        flash = self._style(f"flash-{line.flash}") if line.flash else None
        change = self._style(line.change_dir) if line.change_dir != "flat" else Style()
        spark_dir = direction(line.spark[-1] - line.spark[0]) if len(line.spark) > 1 else "flat"
        spark_style = self._style(spark_dir) if spark_dir != "flat" else self._style("muted")
        segments = [
            Segment(f"{line.symbol:<{at.symbol}}"[: at.symbol], self._style("symbol")),
            gap,
            Segment(_price(line.bid, at), flash),
            gap,
            Segment(_price(line.ask, at), flash),
            gap,
        ]
        if at.spread:
            segments += [Segment(f"{line.spread:>{at.spread}}"), gap]
        segments += [
            Segment(f"{line.change:>{at.change}}", change),
            gap,
            Segment(sparkline(line.spark, max(0, width - at.fixed)), spark_style),
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
