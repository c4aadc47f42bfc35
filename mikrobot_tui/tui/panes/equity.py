"""Equity and drawdown per account: a chart of the `equity` table's minutes, not only numbers.

The engine writes one point per account per minute of market time (paper/watch.py). The pane
reads the last POINTS of each account every READ_EVERY_S in a thread worker (its own
connection, like the screen's polls) and plots two charts with plotext: equity on top and,
below, the drawdown from the running peak in percent (equity / max(equity so far) - 1). The
subtitle gives each account's deepest drawdown of what is shown. The plot widgets
(textual-plotext) are imported and mounted after the first frame: the frame must not wait.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mikrobot_tui.store.queries import read_only
from mikrobot_tui.tui.panes._dated import Dated

if TYPE_CHECKING:  # numpy comes with the first curve: an empty database's frame waits for none
    import numpy as np

POINTS = 480  # the last eight hours of minutes per account
TWO_CHARTS_ROWS = 14  # below this the drawdown chart goes (its figures stay in the subtitle)
READ_EVERY_S = 5.0
NS_PER_MINUTE = 60_000_000_000


@dataclass(frozen=True, slots=True)
class Curve:
    account: str
    ts: np.ndarray  # int64 ns, minute starts, oldest first
    equity: np.ndarray

    @property
    def drawdown_pct(self) -> np.ndarray:
        """(equity / running peak - 1) x 100: 0 at a new high, negative below it."""
        import numpy as np

        if len(self.equity) == 0:
            return self.equity
        return (self.equity / np.maximum.accumulate(self.equity) - 1.0) * 100.0


def read_curves(conn: sqlite3.Connection, points: int = POINTS) -> list[Curve]:
    """The last `points` minutes of each account's equity, oldest first, accounts by name."""
    curves = []
    names = [r[0] for r in conn.execute("SELECT DISTINCT account FROM equity ORDER BY account")]
    if not names:
        return curves
    import numpy as np

    for name in names:
        rows = conn.execute(
            "SELECT ts, equity FROM equity WHERE account = ? ORDER BY ts DESC LIMIT ?",
            (name, points),
        ).fetchall()
        rows.reverse()
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        equity = np.array([r[1] for r in rows], dtype=np.float64)
        curves.append(Curve(name, ts, equity))
    return curves


def drawdown_words(curves: list[Curve]) -> str:
    """Each account's deepest drawdown in what is shown: `A -1.24% · B 0.00%`."""
    parts = []
    for c in curves:
        deepest = float(c.drawdown_pct.min()) if len(c.equity) else 0.0
        parts.append(f"{c.account} dd {deepest:.2f}%")
    return " · ".join(parts)


class EquityPane(Dated, Vertical):
    DEFAULT_CSS = """
    EquityPane { height: 1fr; min-height: 8; }
    EquityPane > #equity-empty { color: $text-muted; }
    EquityPane > #equity-plot { height: 3fr; }
    EquityPane > #drawdown-plot { height: 2fr; }
    """

    def __init__(self, db_path: Path | str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Equity · drawdown"
        self.db_path = Path(db_path)
        self.curves: list[Curve] = []
        self._plots: tuple = ()  # (equity, drawdown) PlotextPlots, once mounted

    def compose(self) -> ComposeResult:
        yield Static("no equity yet: the engine writes a point a minute", id="equity-empty")

    def on_mount(self) -> None:
        # the first read inline (a few milliseconds), as the screen's: the first chart is whole
        self.show(self._curves())
        self.call_after_refresh(self._mount_plot)
        self.set_interval(READ_EVERY_S, self._read)

    def on_resize(self) -> None:
        if self._plots:
            self._draw()

    def _curves(self) -> list[Curve]:
        if not self.db_path.exists():
            return []
        try:
            with closing(read_only(str(self.db_path))) as conn:
                return read_curves(conn)
        except sqlite3.Error:
            return []  # a database in trouble (or not made yet): the screen says so

    def _mount_plot(self) -> None:
        if self._plots or not self.is_attached:  # mounted already, or the cockpit has gone
            return
        if not self.is_mounted:  # a busy start: try again after the next refresh
            self.call_after_refresh(self._mount_plot)
            return
        from textual_plotext import PlotextPlot  # 0.25 s of imports: after the first frame

        self._plots = (PlotextPlot(id="equity-plot"), PlotextPlot(id="drawdown-plot"))
        for plot in self._plots:
            plot.display = False
        self.mount(*self._plots)
        self._draw()

    @work(thread=True, exclusive=True, exit_on_error=False, group="equity")
    def _read(self) -> None:
        self.app.call_from_thread(self.show, self._curves())

    def show(self, curves: list[Curve]) -> None:
        self.curves = [c for c in curves if len(c.equity)]
        self.set_subtitle(drawdown_words(self.curves))
        self._draw()

    def _draw(self) -> None:
        has_points = any(len(c.equity) > 1 for c in self.curves)
        # a cockpit refused at start-up can be torn down while this pane mounts: its
        # children may be gone already
        for empty in self.query("#equity-empty"):
            empty.display = not has_points
        if not self._plots:
            return
        for plot in self._plots:
            plot.display = has_points
        if not has_points:
            return
        self._plots[1].display = self.size.height >= TWO_CHARTS_ROWS
        newest = max(int(c.ts[-1]) for c in self.curves)
        minutes = [((c.ts - newest) / NS_PER_MINUTE).tolist() for c in self.curves]
        equity, drawdown = self._plots
        for plot, title, series, labelled in (
            (equity, "equity", [c.equity for c in self.curves], True),
            (
                drawdown,
                "drawdown %  ·  minutes before now",
                [c.drawdown_pct for c in self.curves],
                False,
            ),
        ):
            plt = plot.plt
            plt.clear_data()
            plt.title(title)
            for c, x, y in zip(self.curves, minutes, series, strict=True):
                plt.plot(x, y.tolist(), label=c.account if labelled else "", marker="braille")
            plot.refresh()
