"""A stand-in for the MetaTrader5 module: the same functions, the real numpy dtypes, a script.

MetaTrader5 exists only for Windows, so the MT5 feed's tests pass this object instead. It
serves the ticks a test scripts (`add`, or a running market with `live`), answers
`copy_ticks_from` the way the terminal does (every tick at or after date_from's second, at most
`count`, oldest first, as a structured array with the module's dtype), can fail the next calls
with an IPC error (`fail`: -10004 no IPC connection, -10005 timeout after a wait), can be slow
(`delay_s`), and counts calls that overlapped (the real module is not thread-safe).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

# numpy's view of MqlTick, as MetaTrader5.copy_ticks_from returns it
TICKS_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)
# numpy's view of MqlRates, as MetaTrader5.copy_rates_range returns it
RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)
Tick = namedtuple("Tick", "time bid ask last volume time_msc flags volume_real")
SymbolInfo = namedtuple(
    "SymbolInfo",
    "name path digits point trade_contract_size trade_tick_value trade_tick_size volume_min "
    "volume_max volume_step currency_base currency_profit currency_margin trade_mode visible "
    "select",
)
TerminalInfo = namedtuple("TerminalInfo", "connected build name")

TICK_FLAG_BID, TICK_FLAG_ASK, TICK_FLAG_LAST = 2, 4, 8
TICK_FLAG_VOLUME, TICK_FLAG_BUY, TICK_FLAG_SELL = 16, 32, 64
QUOTE = TICK_FLAG_BID | TICK_FLAG_ASK


def fx(name: str, digits: int = 5, path: str = "Forex\\Majors", trade_mode: int = 4) -> SymbolInfo:
    point = 10.0**-digits
    return SymbolInfo(
        name, f"{path}\\{name}", digits, point, 100_000.0, 1.0, point, 0.01, 100.0, 0.01,
        name[:3], name[3:6], name[:3], trade_mode, True, True,
    )  # fmt: skip


def cfd(
    name: str,
    path: str,
    digits: int,
    contract: float,
    base: str = "USD",
    quote: str = "USD",
    tick_size: float | None = None,
) -> SymbolInfo:
    point = 10.0**-digits
    return SymbolInfo(
        name, f"{path}\\{name}", digits, point, contract, 1.0, tick_size or point, 0.01, 50.0,
        0.01, base, quote, quote, 4, True, True,
    )  # fmt: skip


class FakeMT5:
    COPY_TICKS_ALL, COPY_TICKS_INFO, COPY_TICKS_TRADE = -1, 1, 2
    TIMEFRAME_M1 = 1
    TICK_FLAG_BID, TICK_FLAG_ASK, TICK_FLAG_LAST = 2, 4, 8
    TICK_FLAG_VOLUME, TICK_FLAG_BUY, TICK_FLAG_SELL = 16, 32, 64

    def __init__(
        self, infos: list[SymbolInfo], password: str | None = None, delay_s: float = 0.0
    ) -> None:
        self.infos = {i.name: i for i in infos}
        self.password = password
        self.delay_s = delay_s
        self.ticks: dict[str, list[tuple]] = {name: [] for name in self.infos}
        self.initialized = False
        self.error: tuple[int, str] = (1, "Success")
        self.initialize_calls: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int, int]] = []  # copy_ticks_from (symbol, from s, count)
        self.rates: dict[str, np.ndarray] = {}  # symbol -> M1 rates, server-clock seconds
        self.rate_requests: list[tuple[str, int, int]] = []  # copy_rates_range (sym, from, to)
        self.selected: set[str] = set()
        self.overlaps = 0
        self._failures: list[tuple[int, str, float, set[str] | None]] = []
        self._active = 0
        self._guard = threading.Lock()  # the fake's own bookkeeping, not the module's
        self._market: Callable[[], None] | None = None

    # ---------------------------------------------------------------- scripting

    def add(
        self,
        symbol: str,
        time_msc: int,
        bid: float = 0.0,
        ask: float = 0.0,
        last: float = 0.0,
        volume: int = 0,
        flags: int = QUOTE,
        volume_real: float = 0.0,
    ) -> None:
        with self._guard:
            rows = self.ticks[symbol]
            assert not rows or rows[-1][5] <= time_msc, "a terminal's history only grows"
            rows.append((time_msc // 1000, bid, ask, last, volume, time_msc, flags, volume_real))

    def fail(
        self,
        code: int = -10004,
        message: str = "IPC send failed",
        times: int = 1,
        delay_s: float = 0.0,
        calls: set[str] | None = None,
    ) -> None:
        """The next `times` calls (of `calls`, default any but last_error) fail with `code`."""
        with self._guard:
            self._failures += [(code, message, delay_s, calls)] * times

    def live(self, start_ms: int, speed: float, every_ms: int = 50, seed: int = 1) -> None:
        """A running market: each symbol ticks every `every_ms` of server time, the server clock
        running `speed` times the wall clock from `start_ms`."""
        rng = np.random.default_rng(seed)
        wall0 = time.monotonic()
        mids = {name: (1.1 if info.digits == 5 else 150.0) for name, info in self.infos.items()}
        made = {name: start_ms for name in self.infos}

        def advance() -> None:
            now = start_ms + int((time.monotonic() - wall0) * 1000 * speed)
            for name, info in self.infos.items():
                while made[name] + every_ms <= now:
                    made[name] += every_ms
                    mids[name] *= 1 + rng.normal(0, 2e-5)
                    half = 5 * info.point
                    mid = round(mids[name], info.digits)
                    self.add(name, made[name], round(mid - half, info.digits), mid + half)

        self._market = advance
        advance()

    def add_rates(self, symbol: str, rates: np.ndarray) -> None:
        """M1 bars (RATES_DTYPE, `time` on the server clock) for copy_rates_range."""
        with self._guard:
            both = np.concatenate([self.rates.get(symbol, np.zeros(0, RATES_DTYPE)), rates])
            self.rates[symbol] = np.sort(both, order="time")

    def script(self, symbol: str) -> np.ndarray:
        with self._guard:
            return np.array(self.ticks[symbol], dtype=TICKS_DTYPE)

    # ---------------------------------------------------------------- every call

    def _enter(self, name: str) -> tuple[int, str] | None:
        """Bookkeeping at the start of a call; the error it must fail with, if any."""
        with self._guard:
            self._active += 1
            if self._active > 1:
                self.overlaps += 1
            failure = None
            for k, (code, message, delay, calls) in enumerate(self._failures):
                if calls is None or name in calls:
                    failure = (code, message, delay)
                    del self._failures[k]
                    break
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if failure is not None:
                code, message, delay = failure
                time.sleep(delay)
                if code in (-10004, -10005, -10001, -10002):
                    self.initialized = False
                return code, message
            if not self.initialized and name != "initialize":
                return -10004, "No IPC connection"
            if self._market is not None:
                self._market()
            return None
        except BaseException:
            self._leave()
            raise

    def _leave(self) -> None:
        with self._guard:
            self._active -= 1

    def _answer(self, name: str, value: Callable[[], Any], failed: Any = None) -> Any:
        error = self._enter(name)
        try:
            if error is not None:
                self.error = error
                return failed
            self.error = (1, "Success")
            result = value()
            if result is None or result is False:
                self.error = (-1, "Terminal: Call failed")
            return result
        finally:
            self._leave()

    # ---------------------------------------------------------------- the module's functions

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        self.initialize_calls.append(
            {"path": path, "login": login, "password": password, "server": server}
        )

        def go() -> bool:
            if self.password is not None and password != self.password:
                self.error = (-6, "Terminal: Authorization failed")
                return False
            self.initialized = True
            return True

        error = self._enter("initialize")
        try:
            if error is not None:
                self.error = error
                return False
            ok = go()
            if ok:
                self.error = (1, "Success")
            return ok
        finally:
            self._leave()

    def shutdown(self) -> None:
        self.initialized = False

    def last_error(self) -> tuple[int, str]:
        return self.error

    def terminal_info(self) -> TerminalInfo | None:
        return self._answer("terminal_info", lambda: TerminalInfo(True, 4000, "MetaTrader 5"))

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        def go() -> bool:
            if symbol not in self.infos:
                return False
            self.selected.add(symbol)
            return True

        return self._answer("symbol_select", go, failed=False)

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        return self._answer("symbol_info", lambda: self.infos.get(symbol))

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        def go() -> Tick | None:
            rows = self.ticks.get(symbol)
            return Tick(*rows[-1]) if rows else None

        return self._answer("symbol_info_tick", go)

    def symbols_get(self, group: str = "*") -> tuple[SymbolInfo, ...] | None:
        return self._answer(
            "symbols_get",
            lambda: tuple(i for n, i in self.infos.items() if fnmatch.fnmatch(n, group)),
        )

    def copy_ticks_from(
        self, symbol: str, date_from: int | datetime, count: int, flags: int
    ) -> np.ndarray | None:
        def go() -> np.ndarray | None:
            assert symbol in self.selected, "symbol_select comes before symbol data"
            seconds = (
                int(date_from.timestamp()) if isinstance(date_from, datetime) else int(date_from)
            )
            self.requests.append((symbol, seconds, count))
            with self._guard:
                rows = [r for r in self.ticks[symbol] if r[5] >= seconds * 1000][:count]
            if flags == self.COPY_TICKS_INFO:
                rows = [r for r in rows if r[6] & QUOTE]
            elif flags == self.COPY_TICKS_TRADE:
                rows = [r for r in rows if r[6] & TICK_FLAG_LAST]
            return np.array(rows, dtype=TICKS_DTYPE)

        return self._answer("copy_ticks_from", go)

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: int | datetime, date_to: int | datetime
    ) -> np.ndarray | None:
        """Bars opening in [date_from, date_to] (both on the server clock, as MT5 reads them;
        a datetime by its timestamp), oldest first; None with (-4, ...) when no symbol."""

        def seconds(value: int | datetime) -> int:
            return int(value.timestamp()) if isinstance(value, datetime) else int(value)

        def go() -> np.ndarray | None:
            assert timeframe == self.TIMEFRAME_M1, "the stand-in keeps M1 bars only"
            if symbol not in self.infos:
                return None
            lo, hi = seconds(date_from), seconds(date_to)
            self.rate_requests.append((symbol, lo, hi))
            with self._guard:
                rates = self.rates.get(symbol, np.zeros(0, RATES_DTYPE))
                return rates[(rates["time"] >= lo) & (rates["time"] <= hi)].copy()

        return self._answer("copy_rates_range", go)
