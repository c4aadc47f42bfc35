"""The MetaTrader 5 feed: ticks polled from a terminal, with no duplicate and no hole.

Every `mt5.poll_ms` a worker thread (asyncio.to_thread: the event loop never waits on the
terminal) asks each symbol for its new ticks with `copy_ticks_from`; mt5_ticks.py says how a
cursor per symbol makes that exact and how ticks become TICK_DTYPE rows (ts_event: the broker's
server clock in UTC through `mt5.server_timezone`; ts_recv: the local wall clock) and trades
(`take_trades`). One poll at a time per symbol: a poll still running when the next is due is
waited for, a symbol whose poll is still under way is skipped, and ticks go to an outbox in the
same step that moves the cursor, so a poll nobody waits for any more loses nothing either.

The weekend is not a gap: while no new tick comes during the FX weekend (Friday 22:00 to Sunday
22:00 UTC), or every symbol's trade_mode is SYMBOL_TRADE_MODE_DISABLED, the connection's state
is CLOSED ("market closed"); silence on a weekday is STALE. Neither is a failure. A failure is
the terminal not answering: an IPC error (-10004 no IPC connection, -10005 timeout, ...), a
call returning None (other than "no history"), the bridge gone. The feed then re-initializes
with exponential backoff and full jitter (0.5 s doubling up to 30 s), polls on from its cursors
(no hole), counts the reconnect in its health, and keeps the failure's wall-clock time for the
feed's breaker: `take_failures()` returns (ns, reason) pairs since the last call, the same shape
as the Binance feed's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import warnings
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import numpy as np

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import ConfigError, ConfigWarning, Settings
from mikrobot_tui.data.feeds.health import DOWN, LIVE, STALE, STOPPED, FeedHealth, HealthMeter
from mikrobot_tui.data.feeds.mt5_terminal import (
    INIT_FAILED,
    NOT_FOUND,
    TRADE_MODE_DISABLED,
    CallFailed,
    ConnectionLost,
    SymbolSpec,
    Terminal,
    catalogue_entry,
    instrument_from_info,
    load_module,
)
from mikrobot_tui.data.feeds.mt5_ticks import (
    COPY_TICKS_ALL,
    Cursor,
    ServerClock,
    as_ticks,
    fx_weekend,
)
from mikrobot_tui.domain.instruments import Instrument, default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE, TRADE_DTYPE, Depth
from mikrobot_tui.domain.timezones import parse_server_zone

CLOSED = "CLOSED"  # the market is shut (FX weekend, trading disabled): silence is expected
QUIET_S = 30.0  # no new tick for this long: CLOSED on the weekend, STALE otherwise
MODES_EVERY_S = 60.0  # how often a quiet feed asks again whether the market is open
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.5, 30.0


class MT5Feed:
    """Ticks of `symbols` from one MetaTrader 5 terminal (see the module's docstring)."""

    mode = "LIVE"
    name = "mt5"

    def __init__(
        self,
        terminal: Terminal,
        symbols: list[str],
        server_clock: ServerClock,
        clock: Clock,
        poll_ms: int,
        rng: random.Random | None = None,
        backoff_s: tuple[float, float] = (BACKOFF_BASE_S, BACKOFF_CAP_S),
        bridge: str | None = None,
    ) -> None:
        self._terminal = terminal
        self._bridge = bridge  # host:port of an mt5linux bridge, for messages
        self._symbols = list(symbols)
        self._server = server_clock
        self._clock = clock
        self._poll_s = poll_ms / 1000
        self._rng = rng or random.Random()
        self.backoff_s = backoff_s  # (base, cap) of the reconnect delays
        self._meter = HealthMeter("mt5", "mt5", wall=clock.now_ns)
        self._instruments: dict[str, Instrument] = {}
        self.specs: dict[str, SymbolSpec] = {}  # what symbol_info says beyond the instrument
        self._cursors = [Cursor() for _ in symbols]
        self._guards = [threading.Lock() for _ in symbols]  # one poll at a time per symbol
        self._refused: set[int] = set()  # symbols the broker no longer has
        self._out_lock = threading.Lock()
        self._ticks: list[np.ndarray] = []
        self._trades: list[np.ndarray] = []
        self._failures: deque[tuple[int, str]] = deque(maxlen=10_000)
        self._activity_ns: int | None = None  # wall time of the last new market tick
        self._modes_ns: int | None = None  # wall time trade modes were last read
        self._attempt = 0  # reconnect attempts since the last good poll
        self._live_since_ns = clock.now_ns()  # wall time of the last (re)connection

    # ---------------------------------------------------------------- the Feed protocol

    @property
    def symbols(self) -> list[str]:
        return self._symbols

    def instruments(self) -> dict[str, Instrument]:
        return dict(self._instruments)

    def history(self) -> Iterator[np.ndarray]:
        return iter(())  # strategies warm up on the database's bars

    def take_trades(self) -> np.ndarray:
        with self._out_lock:
            parts, self._trades = self._trades, []
        return np.concatenate(parts) if parts else np.zeros(0, dtype=TRADE_DTYPE)

    def books(self) -> dict[str, Depth]:
        """No depth from the terminal (market_book_add is not subscribed)."""
        return {}

    def take_failures(self) -> list[tuple[int, str]]:
        """(wall-clock ns, reason) of the connection failures since the last call.

        A failure is a call that found the terminal unreachable or a reconnect attempt that
        failed; a closed market's silence is never one. Meant for the feed's circuit breaker.
        """
        with self._out_lock:
            out = list(self._failures)
            self._failures.clear()
        return out

    def health(self) -> list[FeedHealth]:
        now = self._clock.now_ns()
        snap = self._meter.snapshot(now)
        if snap.state != LIVE:
            return [snap]
        quiet = self._activity_ns is None or now - self._activity_ns > QUIET_S * NS_PER_SECOND
        if not quiet:
            return [snap]
        if fx_weekend(now):
            return [replace(snap, state=CLOSED, detail="market closed (FX weekend)")]
        names = [s for i, s in enumerate(self._symbols) if i not in self._refused]
        modes = [self.specs[s].trade_mode for s in names if s in self.specs]
        if modes and all(m == TRADE_MODE_DISABLED for m in modes):
            return [replace(snap, state=CLOSED, detail="market closed (trading disabled)")]
        if now - self._live_since_ns <= QUIET_S * NS_PER_SECOND:
            return [snap]  # just (re)connected: the first tick may take a moment
        return [replace(snap, state=STALE, detail=f"no new tick for over {QUIET_S:.0f} s")]

    # ---------------------------------------------------------------- connecting

    def open(self, key: str) -> None:
        """The first connection, at start-up: instruments from the broker, or a clear refusal.

        A terminal that cannot be found, a refused login or a symbol the broker does not have
        is a ConfigError. A terminal that does not answer yet (an IPC error) is not: the feed
        starts DOWN with the built-in catalogue's instruments (when it knows every symbol, with
        a warning) and keeps trying to connect.
        """
        try:
            self._terminal.connect()
            self._select_all(key)
        except ConnectionLost as exc:
            self._terminal.close()
            if exc.code == INIT_FAILED:
                raise ConfigError(
                    f"mt5.path: the MetaTrader 5 terminal was not found or did not start "
                    f"({exc.message}); install it, start it, or set mt5.path to its "
                    "terminal64.exe"
                ) from None
            if exc.code is None and self._bridge is not None:
                raise ConfigError(
                    f"mt5.bridge: the mt5linux bridge at {self._bridge} does not answer "
                    f"({exc.message}); start its server beside the terminal, or fix mt5.bridge"
                ) from None
            self._fall_back(key, exc)
            return
        except CallFailed as exc:
            self._terminal.close()
            raise ConfigError(
                f"mt5.login: the terminal refused the account ({exc.message}); check mt5.login, "
                "mt5.server and MIKROBOT_MT5__PASSWORD"
            ) from None
        except ConfigError:
            self._terminal.close()
            raise
        self._meter.state = LIVE
        self._live_since_ns = self._clock.now_ns()

    def _fall_back(self, key: str, exc: ConnectionLost) -> None:
        catalogue = default_instruments()
        known = {s: catalogue_entry(s, catalogue) for s in self._symbols}
        unknown = [s for s, i in known.items() if i is None]
        if unknown:
            raise ConfigError(
                f"{key}: {unknown} cannot be described: the terminal does not answer "
                f"({exc}) and the built-in catalogue does not know them; start the terminal "
                "and try again"
            ) from None
        self._instruments = {s: i for s, i in known.items() if i is not None}
        warnings.warn(
            f"MetaTrader 5 does not answer ({exc}); instruments from the built-in catalogue "
            "until it does; the feed keeps trying to connect",
            ConfigWarning,
            stacklevel=3,
        )
        self._down(exc)

    def _select_all(self, key: str | None) -> None:
        """symbol_select and describe every symbol (in the calling thread). At start-up (`key`
        given) a symbol the broker lacks is a ConfigError; later it is left out and said."""
        catalogue = default_instruments()
        refused: list[tuple[str, CallFailed | None]] = []
        for i, sym in enumerate(self._symbols):
            try:
                info, tick = self._terminal.select(sym)
            except ConnectionLost:
                raise
            except CallFailed as exc:
                refused.append((sym, exc))
                continue
            described = instrument_from_info(sym, info, catalogue)
            if described is not None:
                self._instruments[sym], self.specs[sym] = described
            elif sym not in self._instruments:
                fallback = catalogue_entry(sym, catalogue)
                if fallback is None:
                    refused.append((sym, None))
                    continue
                self._instruments[sym] = fallback
            cur = self._cursors[i]
            if cur.msc is None:
                now = self._clock.now_ns()
                cur.msc = int(tick.time_msc) if tick is not None else self._server.server_ms(now)
                cur.seed = cur.msc if tick is not None else None
        self._modes_ns = self._clock.now_ns()
        if refused and key is not None:
            sym, exc = refused[0]
            why = exc.message if exc is not None else "its symbol_info is incomplete"
            like = self._terminal.similar(sym)
            hint = f"; the broker has {like}" if like else ""
            raise ConfigError(
                f"{key}: the broker has no usable symbol {sym!r} ({why}){hint}; Market Watch "
                "shows the broker's names (some add a suffix, e.g. EURUSD.m)"
            )
        self._refused = {self._symbols.index(s) for s, _ in refused}

    def _down(self, exc: Exception) -> None:
        with self._out_lock:
            self._failures.append((self._clock.now_ns(), self._terminal.scrub(str(exc))))
        self._terminal.connected = False
        self._meter.state = DOWN
        self._meter.detail = self._terminal.scrub(str(exc))

    def _reconnect_now(self) -> None:
        self._terminal.connect()
        self._select_all(None)

    async def _reconnect(self, stop: asyncio.Event) -> None:
        base, cap = self.backoff_s
        delay = self._rng.uniform(0, min(cap, base * 2**self._attempt))
        self._attempt += 1
        reason = self._meter.detail
        self._meter.detail = f"{reason}; reconnecting in {delay:.1f} s"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        try:
            await asyncio.to_thread(self._reconnect_now)
        except CallFailed as exc:
            self._down(exc)
            return
        self._meter.reconnects += 1
        self._meter.state = LIVE
        self._live_since_ns = self._clock.now_ns()
        gone = [s for i, s in enumerate(self._symbols) if i in self._refused]
        lost = f"; the broker no longer has {gone}, left out" if gone else ""
        self._meter.detail = f"reconnected after: {reason}{lost}"

    # ---------------------------------------------------------------- polling

    def poll_once(self) -> None:
        """One poll of every symbol, in the calling (worker) thread: new ticks to the outbox.

        Raises ConnectionLost when the terminal does not answer; what earlier symbols got is
        kept.
        """
        for i, sym in enumerate(self._symbols):
            if i in self._refused:
                continue
            guard = self._guards[i]
            if not guard.acquire(blocking=False):
                continue  # this symbol's previous poll is still running
            try:
                self._poll_symbol(i, sym)
            finally:
                guard.release()

    def _poll_symbol(self, i: int, sym: str) -> None:
        cur = self._cursors[i]
        if cur.msc is None:
            return
        try:
            raw = self._terminal.call(
                "copy_ticks_from", sym, cur.msc // 1000, cur.fetch, COPY_TICKS_ALL
            )
        except ConnectionLost:
            raise
        except CallFailed as exc:
            if exc.code == NOT_FOUND:
                return  # no ticks in the window
            raise ConnectionLost(exc.call, exc.code, exc.message) from None
        recv = self._clock.now_ns()
        raw = as_ticks(raw)
        new = cur.take_new(raw) if len(raw) else raw
        if not len(new):
            return
        ticks, trades = cur.convert(i, new, recv, self._server)
        if cur.seed is None or cur.msc > cur.seed:
            self._activity_ns = recv
        with self._out_lock:
            if len(ticks):
                self._ticks.append(ticks)
            if len(trades):
                self._trades.append(trades)

    def _read_modes(self) -> None:
        """Trade modes again (a quiet feed asks whether the market is shut)."""
        for sym in self._symbols:
            if sym in self.specs:
                info = self._terminal.call("symbol_info", sym)
                mode = int(getattr(info, "trade_mode", self.specs[sym].trade_mode))
                self.specs[sym] = replace(self.specs[sym], trade_mode=mode)
        self._modes_ns = self._clock.now_ns()

    def _take_ticks(self) -> np.ndarray:
        with self._out_lock:
            parts, self._ticks = self._ticks, []
        if not parts:
            return np.zeros(0, dtype=TICK_DTYPE)
        batch = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1:
            batch = batch[np.argsort(batch["ts_event"], kind="stable")]
        return batch

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        running: asyncio.Future[None] | None = None
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if not self._terminal.connected:
                    await self._reconnect(stop)
                    continue
                started = loop.time()
                if running is None:
                    running = asyncio.ensure_future(asyncio.to_thread(self._poll_round))
                await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if running.done():
                    failed = running.exception()
                    running = None
                    if isinstance(failed, CallFailed):
                        self._down(failed)
                    elif failed is not None:
                        raise failed
                    else:
                        self._attempt = 0
                batch = self._take_ticks()
                if len(batch):
                    self._meter.message(len(batch))
                    self._meter.latencies(batch["ts_recv"] - batch["ts_event"])
                    yield batch
                rest = started + self._poll_s - loop.time()
                if rest > 0 and not stop.is_set():
                    await asyncio.wait({stopping}, timeout=rest)
        finally:
            stopping.cancel()
            if running is not None:  # a poll still under way finishes in its thread, unheard
                running.add_done_callback(_quiet)
            self._terminal.close()
            self._meter.state = STOPPED

    def _poll_round(self) -> None:
        self.poll_once()
        now = self._clock.now_ns()
        quiet = self._activity_ns is None or now - self._activity_ns > QUIET_S * NS_PER_SECOND
        if quiet and (self._modes_ns is None or now - self._modes_ns > MODES_EVERY_S * 1e9):
            self._read_modes()


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def from_settings(
    settings: Settings, clock: Clock, symbols: list[str] | None = None, module: object = None
) -> MT5Feed:
    """The feed of config.toml's [mt5] (on `symbols` when a mixed feed gives them), connected.

    `module` is the MetaTrader5 API object to use (tests pass a stand-in); None finds it:
    mt5linux's client when mt5.bridge is set, else the MetaTrader5 package (mt5_terminal.py).
    """
    s = settings.mt5
    key = "mt5.symbols" if symbols is None else "feeds (venue mt5).symbols"
    factory = (lambda: module) if module is not None else load_module(s)
    server_clock = ServerClock(*parse_server_zone(s.server_timezone))
    bridge = s.bridge if module is None else None
    names = list(symbols or s.symbols)
    feed = MT5Feed(Terminal(factory, s), names, server_clock, clock, s.poll_ms, bridge=bridge)
    feed.open(key)
    return feed
