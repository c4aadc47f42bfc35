"""One batch of ticks through the pipeline: quality, candles, strategies, decisions, matching.

A batch is any number of ticks of any symbols, in arrival order. The corridor walks it in tick
order: the quality monitor keeps the clean ticks (rejects are stored with their reason, spikes
are stored but never traded on), candles close bars, strategies that ask for ticks get their
symbols' ticks of the batch as arrays, and at each tick that closed a bar or carries a tick
strategy's signal, the fills and exits due before it are booked, the feed's breaker is judged
up to it, and strategies decide. So what happens does not depend on how the
ticks were cut into batches (invariant 2): replaying with batches of 1 or of 10,000 gives the
same events.

Operator commands overtake market data: at each decision point, before anything is decided
there, the corridor asks `overtake` (the engine's: a command sent since it last looked is
carried out at once), so a halt sent while a backlog of ticks waits in the batch stops every
order decided after it arrived.

A live engine with external signals (engine/external.py) empties their inbox at the start of
each batch; a waiting signal is decided at the batch's first clean tick of its symbol, after
the bars and tick strategies of that tick. A replay has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mikrobot_tui.clock import Clock, ReplayClock
from mikrobot_tui.config import Settings
from mikrobot_tui.data.candles import NO_BARS_CLOSED, CandleSet
from mikrobot_tui.data.feeds.rejects import FeedReject
from mikrobot_tui.data.quality import QualityMonitor, QualityResult
from mikrobot_tui.domain.market import M1, TIMEFRAMES, Bar, timeframe_name
from mikrobot_tui.domain.orders import Signal
from mikrobot_tui.engine.decisions import Decisions, record_breaker
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.paper.venue import Venue
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.judges import FeedJudge
from mikrobot_tui.trading.timeframes import BarHistory

if TYPE_CHECKING:
    from mikrobot_tui.data.signals import ExternalSignal
    from mikrobot_tui.engine.external import ExternalIntake

External = tuple[int, "ExternalSignal", str]  # (batch index, signal, account)


@dataclass
class Counts:
    """What has gone through the corridor since the engine's session began (after its
    warm-up)."""

    ticks_in: int = 0
    ticks_clean: int = 0
    bars: int = 0
    rejects: int = 0


class Corridor:
    def __init__(
        self,
        settings: Settings,
        quotes: LastQuotes,
        ledger: Ledger,
        decisions: Decisions,
        writer: Writer,
        clock: Clock,
        source: str,
        external: ExternalIntake | None = None,
        venue: Venue | None = None,
    ) -> None:
        self.symbols = quotes.symbols
        n = len(self.symbols)
        fx_hours = [not settings.quality.always_open(s) for s in self.symbols]
        self.quality = QualityMonitor(n, settings.quality, fx_hours=fx_hours)
        self._periods = sorted(TIMEFRAMES.values())  # M1 to D1
        self._frame_names = {p: timeframe_name(p) for p in self._periods}
        # a symbol with New York's hours keeps New York's trading day for H4 and D1
        self.ny_close = fx_hours
        self.candles = CandleSet(n, self._periods, ny_close=fx_hours)
        self.feed_judge = FeedJudge(decisions.feed_breaker)
        self.counts = Counts()
        self.warming = False  # history: strategies learn, nothing is traded, ticks not stored
        self._settings = settings
        self.quotes = quotes
        self._ledger = ledger
        self.venue = venue or Venue(ledger)
        self._decisions = decisions
        self._writer = writer
        self._clock = clock
        self._source = source  # the rejects' source column: the feed's breaker name
        self.external = external  # external signals' intake; None in a replay
        self.clean_stream = 0  # running maximum of tradeable tick times
        self._stream = np.zeros(0, dtype=np.int64)  # per tradeable tick of the current batch
        # the newest stored bar per symbol and timeframe at start: the past is never rewritten
        self.bar_floor: np.ndarray | None = None
        # operator commands overtake market data: asked at each decision point before
        # anything is decided there (the engine's CommandPulse and Control); `point_ts` is the
        # market time of the point, the time a command carried out there is logged at
        self.overtake: Callable[[], None] | None = None
        self.point_ts = 0

    def start_session(self) -> None:
        """The warm-up is over: the counts (headless status, quality pane) start at zero."""
        self.counts = Counts()
        self.quality.start_session()

    def set_bar_floors(self, floors: dict[tuple[str, str], int]) -> None:
        """(symbol, timeframe) -> ts_open of its newest stored bar: no bar at or before it is
        written or handed to a strategy again."""
        index = {s: i for i, s in enumerate(self.symbols)}
        floor = np.full((len(self.symbols), len(self._periods)), np.iinfo(np.int64).min)
        names = [timeframe_name(p) for p in self._periods]
        for (symbol, timeframe), ts in floors.items():
            if symbol in index and timeframe in names:
                floor[index[symbol], names.index(timeframe)] = ts
        self.bar_floor = floor

    @property
    def history(self) -> BarHistory:
        """The decisions' recent bars of every symbol and timeframe."""
        return self._decisions.history

    def seed_candles(self, bars: np.ndarray, ticks: np.ndarray) -> None:
        """Bars that were open when the last engine stopped: partial bars rebuilt from stored
        shorter bars, then the stored ticks that continue them. The bars those ticks close
        were stored then, so only the open bars are kept."""
        self.candles.seed(bars)
        if len(ticks):
            self.candles.update(ticks)

    def process(self, ticks: np.ndarray) -> None:
        """Push one batch of ticks (TICK_DTYPE, any symbols) through the whole pipeline."""
        if len(ticks) == 0:
            return
        external = None if self.warming else self.external
        if external is not None:
            external.collect()
        self.counts.ticks_in += len(ticks)
        result = self.quality.check(ticks)
        self._store_rejects(result)
        self.feed_judge.note(ticks["ts_event"], result.problem_ts)
        quality = self._decisions.quality
        if quality is not None:
            quality.note(
                result.problem_ts,
                result.problem_sym,
                result.problem_weight,
                self.quality.accepted_until(),
            )
        clean = result.clean
        if len(clean) == 0:
            return
        self.counts.ticks_clean += len(clean)
        if self._settings.engine.store_ticks and not self.warming:
            self._writer.append_ticks(clean, self.symbols)
        if result.spikes is not None:
            clean = clean[~result.spikes]  # stored and flagged, but never traded on
            if len(clean) == 0:
                return
        stream = np.maximum.accumulate(clean["ts_event"])
        np.maximum(stream, self.clean_stream, out=stream)
        self.clean_stream, self._stream = int(stream[-1]), stream
        self._judge_feed_until(int(stream[0]))
        quotes = BatchQuotes(clean, self.quotes.bid, self.quotes.ask)
        bars, closes = self._close_bars(clean)
        outside = external.due(quotes) if external is not None else []
        # The venue matches working orders and watches accounts up to each decision point;
        # orders decided there are matched from their decision tick on. While warming up on
        # history nothing is matched: open positions from an earlier session must not be
        # stopped out by a past they were not alive in.
        venue = None if self.warming else self.venue
        if venue is not None:
            if len(bars):
                m1 = bars["period_ns"] == M1
                venue.begin(quotes, stream, bars[m1], closes[m1])
            else:
                venue.begin(quotes, stream, bars, closes)
        # BAR_DTYPE is (sym, period_ns, ts_open, open, high, low, close, ticks, volume) and Bar
        # is (symbol, timeframe, ts_open, ...): tuples are far cheaper than numpy records, and
        # the history and the strategies share each bar
        names, frames = self.symbols, self._frame_names
        made = [Bar(names[r[0]], frames[r[1]], *r[2:]) for r in bars.tolist()]
        remember = self._remember(made, closes)
        points = self._decision_points(clean, bars, made, closes, outside)
        for k, closed, signals, externals in points:
            remember(k)
            if venue is not None:
                venue.advance(k, self._judge_at)
            self._judge_feed_until(int(stream[k]))
            if self.overtake is not None and not self.warming:
                self.point_ts = int(stream[k])
                self.overtake()
            for bar in closed:
                self._decisions.on_bar(bar, quotes, k, trading=not self.warming)
            for name, signal in signals if not self.warming else ():
                self._decisions.on_signal(name, signal, quotes, k)
            for _, ext, account in externals:
                assert external is not None
                external.decide(ext, account, quotes, k)
        remember(len(clean))
        if venue is not None:
            venue.advance(len(clean), self._judge_at)
        elif len(bars):  # the venue's volatility learns from history too
            self.venue.pricing.note_bars(bars[bars["period_ns"] == M1])
        self.quotes.update(clean)
        if isinstance(self._clock, ReplayClock):
            self._clock.advance_to(int(clean["ts_event"][-1]))

    def record_trades(self, trades: np.ndarray) -> None:
        """The venue's trades (TRADE_DTYPE), kept beside the ticks when ticks are kept."""
        if len(trades) and self._settings.engine.store_ticks and not self.warming:
            self._writer.append_trades(trades, self.symbols)

    def record_feed_rejects(self, rejects: list[FeedReject]) -> None:
        """Frames a live feed could not turn into ticks: stored in `rejects` with source
        `feed:<name>`, the reason and the raw frame, and counted as the feed's problems."""
        if not rejects:
            return
        self.counts.rejects += len(rejects)
        self._writer.append(
            "rejects",
            ("ts", "ts_event", "source", "symbol", "reason", "raw"),
            [(r.ts_recv, r.ts_recv, f"feed:{r.feed}", r.symbol, r.reason, r.raw) for r in rejects],
        )
        for r in rejects:
            self.feed_judge.fail(r.ts_recv, "rejected frames")

    def record_feed_failures(self, failures: list[tuple[int, str]]) -> None:
        """A live feed's connection failures (dropped, stale, refused): each fails its second
        on the feed's breaker, judged at once (the feed may deliver nothing for a while)."""
        if not failures:
            return
        last = max(self.feed_judge.fail(ts, reason) for ts, reason in failures)
        self._judge_feed_until((last + 1) * FeedJudge.SECOND_NS)

    # ---------------------------------------------------------------- quality and the feed

    def _store_rejects(self, result: QualityResult) -> None:
        if not result.rejects:
            return
        self.counts.rejects += len(result.rejects)
        self._writer.append(
            "rejects",
            ("ts", "ts_event", "source", "symbol", "reason", "raw"),
            [  # ts: when it arrived, which a replay reproduces exactly
                (r.ts_recv, r.ts_event, self._source, self._sym_name(r.sym), r.reason, r.raw)
                for r in result.rejects
            ],
        )

    def _sym_name(self, sym: int) -> str:
        return self.symbols[sym] if 0 <= sym < len(self.symbols) else f"#{sym}"

    def _judge_feed_until(self, ts: int) -> None:
        for change in self.feed_judge.until(ts):
            record_breaker(self._ledger, change)

    # ---------------------------------------------------------------- candles

    def _close_bars(self, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Closed bars of every timeframe, ordered by the tick that closed them, then shortest
        timeframe first (M1, M5, M15, H1) at the same tick."""
        closed = [bc for bc in self.candles.update(clean).values() if len(bc[0])]
        if not closed:  # most small batches close nothing: no concatenation, sort or write
            return NO_BARS_CLOSED
        bars = np.concatenate([b for b, _ in closed])
        closes = np.concatenate([c for _, c in closed]).astype(np.int64)
        if len(bars) and self.bar_floor is not None:
            period_at = np.searchsorted(self._periods, bars["period_ns"])
            new = bars["ts_open"] > self.bar_floor[bars["sym"], period_at]
            if not new.all():
                bars, closes = bars[new], closes[new]
        if len(bars) == 0:
            return bars, closes
        if len(bars) > 1:
            order = np.lexsort((bars["sym"], bars["period_ns"], closes))
            bars, closes = bars[order], closes[order]
        self.counts.bars += len(bars)
        names = [self.symbols[s] for s in bars["sym"].tolist()]
        frames = [timeframe_name(p) for p in bars["period_ns"].tolist()]
        self._writer.upsert(
            "bars",
            COLUMNS["bars"],
            zip(
                names,
                frames,
                *(bars[c].tolist() for c in COLUMNS["bars"][2:]),
                strict=True,
            ),
        )
        return bars, closes

    def _remember(self, bars: list[Bar], closes: np.ndarray) -> Callable[[int], None]:
        """Keeps the batch's closed bars of every timeframe in the decisions' history up to a
        batch index: called at each decision point, so a strategy looking across timeframes
        sees every bar closed at or before its tick and none closed after it, whatever the
        batching."""
        if len(bars) == 0:
            return _nothing
        history = self.history
        ends = closes.tolist()
        done = 0

        def until(k: int) -> None:
            nonlocal done
            while done < len(bars) and ends[done] <= k:
                history.push(bars[done])
                done += 1

        return until

    def _bars_by_close(
        self, bars: np.ndarray, made: list[Bar], closes: np.ndarray
    ) -> Iterator[tuple[int, list[Bar]]]:
        """(closing tick index, the bars it closed) in tick order, for the timeframes wanted;
        `made` holds the Bar of each row of `bars`."""
        if len(bars) == 0:
            return
        # a batch closes a few bars at most: a set beats np.isin's sort on so few
        wanted = {TIMEFRAMES[t] for t in self._decisions.timeframes if t in TIMEFRAMES}
        keep = [p in wanted for p in bars["period_ns"].tolist()]
        if not all(keep):
            keep_at = np.array(keep, dtype=bool)
            closes = closes[keep_at]
            made = [bar for bar, kept in zip(made, keep, strict=True) if kept]
        if len(made) == 0:
            return
        cuts = (np.flatnonzero(np.diff(closes)) + 1).tolist()
        ends = closes.tolist()
        for a, b in zip([0, *cuts], [*cuts, len(made)], strict=True):
            yield ends[a], made[a:b]

    def _decision_points(
        self,
        clean: np.ndarray,
        bars: np.ndarray,
        made: list[Bar],
        closes: np.ndarray,
        outside: list[External],
    ) -> Iterator[tuple[int, list[Bar], list[tuple[str, Signal]], list[External]]]:
        """(batch index, bars closed there, tick strategies' signals there, external signals
        decided there), in tick order."""
        by_bar = self._bars_by_close(bars, made, closes)
        if not self._decisions.tick_strategies and not outside:
            for k, closed in by_bar:
                yield k, closed, [], []
            return
        points: dict[int, tuple[list[Bar], list[tuple[str, Signal]], list[External]]] = {}
        for k, closed in by_bar:
            points[k] = (closed, [], [])
        if self._decisions.tick_strategies:
            for k, name, signal in self._decisions.tick_signals(clean, self.symbols):
                points.setdefault(k, ([], [], []))[1].append((name, signal))
        for item in outside:
            points.setdefault(item[0], ([], [], []))[2].append(item)
        for k in sorted(points):
            yield k, *points[k]

    def _judge_at(self, idx: int) -> None:
        """The feed's breaker is judged up to each venue step, so its changes and the fills
        keep their order in time."""
        self._judge_feed_until(int(self._stream[idx]))


def _nothing(k: int) -> None:
    """No bar closed in the batch: nothing to remember."""
