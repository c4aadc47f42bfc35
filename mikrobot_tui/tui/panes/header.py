"""The cockpit's top line: mode, trading state, engine and the clock's time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from mikrobot_tui.store.queries import EngineStatus, FeedRow
from mikrobot_tui.tui.panes._format import as_of_time

# Below this many columns the header drops what it can spare (the date, words), so the trading
# state and the engine's stay whole on an 80-column terminal.
NARROW = 100


def clock_text(now_ns: int, narrow: bool = False) -> str:
    when = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
    return when.strftime("%H:%M:%S UTC" if narrow else "%Y-%m-%d %H:%M:%S UTC")


def feed_text(feed: FeedRow, narrow: bool) -> str:
    """A connection in a few words: its name and state, and when live its rate and latency."""
    if feed.state != "LIVE" or narrow:
        return f"{feed.name} {feed.state}"
    latency = "" if feed.latency_ms_p50 is None else f" {feed.latency_ms_p50:.0f}ms"
    return f"{feed.name} {feed.msgs_per_s:.0f}/s{latency}"


class StatusHeader(Horizontal):
    """Turns red from edge to edge while trading is halted; REDUCING (only orders that reduce
    exposure, `mikrobot reduce`) shows amber."""

    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; }
    StatusHeader.-halted { background: $error 60%; }
    StatusHeader > Label { padding: 0 1; }
    StatusHeader > #brand { text-style: bold; color: $accent; }
    StatusHeader > #mode { text-style: bold; }
    StatusHeader > #state.-active { background: $success; color: $text; text-style: bold; }
    StatusHeader > #state.-halted { background: $error; color: $text; text-style: bold reverse; }
    StatusHeader > #state.-reducing { background: $warning; color: $text; text-style: bold; }
    StatusHeader > #state.-unknown { color: $text-muted; }
    StatusHeader > #engine { width: 1fr; }
    StatusHeader > #engine.-down { color: $warning; text-style: bold; }
    StatusHeader > #engine.-starting { color: $accent; text-style: bold; }
    StatusHeader > #clock { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._texts: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Label("mikrobot", id="brand")
        yield Label("-", id="mode")
        yield Label("-", id="state")
        yield Label("", id="engine")
        yield Label("", id="clock")

    def _set(self, id: str, text: str, cls: str | None = None) -> None:
        label = self.query_one(f"#{id}", Label)
        old = self._texts.get(id)
        if old != text:
            # A text as wide as the one before repaints the label alone; a layout would reflow
            # and repaint the whole screen, four times a second for the clock and the rates.
            label.update(text, layout=old is None or cell_len(old) != cell_len(text))
            self._texts[id] = text
        if cls is not None:
            label.set_classes(f"-{cls}")

    def show(
        self,
        engine: EngineStatus | None,
        now_ns: int,
        problem: str = "",
        feeds: Sequence[FeedRow] = (),
        *,
        starting: bool = False,
    ) -> None:
        narrow = self.app.size.width < NARROW
        self._set("clock", clock_text(now_ns, narrow))
        if starting:  # this cockpit's own engine: claimed the database, warming up
            self._set("mode", engine.mode if engine is not None and engine.mode else "-")
            self._set("state", "-", "unknown")
            text = "◌ warming up" if narrow else "◌ engine starting · warming up"
            self._set("engine", text, "starting")
            self.set_class(False, "-halted")
            return
        if engine is None:
            self._set("mode", "-")
            self._set("state", "-", "unknown")
            self._set("engine", f"○ no engine running · {problem}" if problem else "", "down")
            self.set_class(False, "-halted")
            return
        self._set("mode", engine.mode or "-")
        halted = engine.trading_state == "HALTED"
        reducing = engine.trading_state == "REDUCING"
        known = ("ACTIVE", "HALTED", "REDUCING")
        state = engine.trading_state if engine.trading_state in known else "-"
        if halted:
            label = " HALTED " if narrow else " HALTED · orders refused "
        elif reducing:
            label = " REDUCING " if narrow else " REDUCING · entries refused "
        else:
            label = state
        # ACTIVE is only shown as live while an engine runs; HALTED and REDUCING stay
        # coloured, they are also the states an engine restarts in.
        live = engine.running and state == "ACTIVE"
        kind = "halted" if halted else "reducing" if reducing else "active" if live else "unknown"
        self._set("state", label, kind)
        self.set_class(halted, "-halted")
        if engine.running and engine.db_problem:
            # the engine keeps every row and retries; the operator should know, and why
            p = engine.db_problem
            what = "full" if "full" in p else "locked" if "locked" in p else "failing"
            self._set("engine", f"● database {what}: rows kept, retrying", "down")
        elif engine.running:
            if feeds:
                text = " · ".join(feed_text(f, narrow) for f in feeds)
                healthy = all(f.state == "LIVE" for f in feeds)
                lead = "● " if narrow else "● engine running · "
                self._set("engine", lead + text, "up" if healthy else "down")
            else:
                feed = f" · feed {engine.feed}" if engine.feed not in ("", "-") else ""
                self._set("engine", f"● engine running{feed}", "up")
        elif engine.heartbeat_ts is not None:
            since = as_of_time(engine.heartbeat_ts, now_ns)
            text = (
                f"○ no engine since {since}" if narrow else f"○ no engine running since {since} UTC"
            )
            self._set("engine", text, "down")
        else:
            self._set("engine", "○ no engine running", "down")
