"""Backfill: M1 bars fetched from a venue into the database, resumable, gaps repaired.

`backfill` plans, fetches and stores; a venue adapter (`BinanceVenue`, `MT5Venue`) only turns a
time range into pages of M1 bars (BAR_DTYPE, UTC). The plan: every M1 minute in [start, end)
that has no stored bar while the market was open (domain/hours.py `market_open`: forex, metals,
indices and energies are shut from Friday 17:00 to Sunday 17:00 New York, so a weekend is not a
gap; crypto never closes) is missing; missing minutes are cut into runs of consecutive minutes
and each run is fetched on its own, so nothing stored is fetched again. A run before the first
stored bar or after the last one extends the history (after the last one: a resume, reported
as `resumed_from_ts`); a run between them is a gap, repaired.

The quality monitor keeps no list of gaps to read back (the `quality` table holds a count and
the last problem, the `rejects` table refused ticks), so the gaps repaired here are the ones
the bars themselves show: a missing M1 bar while the market was open. A minute in which the
venue really had no trade stays missing and is asked for again by the next backfill (Binance
writes a kline for every minute, even without trades; an MT5 broker's quiet night minute costs
one local call).

Each page is stored in one transaction (store/bars.py `write_bars`): its M1 bars and the M5
to D1 bars of the periods it touches, rebuilt from the stored M1 bars with the page's
(data/history.py `aggregate`, the importer's rule). Pages are written in time order, so an
interrupted backfill (Ctrl-C, a dropped connection, a venue that gave up) leaves whole pages
and the next run continues after the last stored bar. Only closed bars are asked for: the end
is clipped to the start of the current minute. Bars the database already holds are never
rewritten.

Venues:
- Binance: `GET /api/v3/klines` through python-binance (`make_client(binance.rest_url)`), 1m,
  1000 per page (startTime the next minute after the page's last bar), ticks = number of
  trades, volume = base asset volume. The request weight goes through the REST limiter
  (`RestWeight`: the next request waits for a new minute when most of the weight is used); a
  429 waits its Retry-After, a 5xx or a dropped connection is retried with exponential
  backoff, a 418 (banned) is not; "invalid symbol" is bad input.
- MetaTrader 5: `copy_rates_range(symbol, TIMEFRAME_M1, from, to)`, a UTC day per request, the
  range given and the bars read on the broker's server clock (`mt5.server_timezone`, converted
  both ways by domain/timezones.py); ticks = tick_volume, volume = real_volume. The module is
  loaded lazily (mt5_terminal.py `load_module`: Windows or an mt5linux bridge); a lost
  connection is re-initialized with backoff.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds.binance_rest import (
    RestUnavailable,
    RestWeight,
    _retry_after,
    make_client,
)
from mikrobot_tui.data.feeds.mt5_terminal import (
    NOT_FOUND,
    CallFailed,
    ConnectionLost,
    Terminal,
    asset_class,
    catalogue_entry,
    load_module,
)
from mikrobot_tui.data.feeds.mt5_ticks import ServerClock
from mikrobot_tui.data.history import aggregate
from mikrobot_tui.domain.bar_clock import bar_open
from mikrobot_tui.domain.hours import market_open
from mikrobot_tui.domain.instruments import AssetClass, default_instruments
from mikrobot_tui.domain.market import BAR_DTYPE, NS_PER_MS, NS_PER_SECOND, TIMEFRAMES
from mikrobot_tui.domain.timezones import parse_server_zone, utc_to_server_ns
from mikrobot_tui.store.bars import read_bars, write_bars

M1 = TIMEFRAMES["M1"]
DAY = 86_400 * NS_PER_SECOND
KLINES_PAGE = 1000  # Binance's largest klines page
TIMEFRAME_M1 = 1  # MetaTrader5.TIMEFRAME_M1
ATTEMPTS = 5
BACKOFF_S = (0.5, 8.0)  # first retry delay, doubling up to the cap
MAX_WAIT_S = 65.0  # a batch job waits out a used-up weight minute or a Retry-After this long


class BadInput(Exception):
    """Something the user gave cannot be backfilled (an unknown symbol)."""


class VenueFailed(Exception):
    """The venue did not answer, after retries. `report` says what was stored before."""

    report: Report | None = None


def pause(seconds: float) -> None:
    """How the adapters wait (tests replace it)."""
    time.sleep(seconds)


class Progress(Protocol):
    def stage(self, what: str, total: int | None = None) -> None: ...

    def advance(self, n: int) -> None: ...


class Venue(Protocol):
    name: str
    requests: int

    def asset_class(self, symbol: str) -> AssetClass:
        """The symbol's asset class; BadInput when the venue does not have it."""
        ...

    def pages(self, symbol: str, start: int, end: int) -> Iterator[tuple[np.ndarray, int]]:
        """(M1 bars in [start, end) in time order, the time the range is done up to)."""
        ...

    def close(self) -> None: ...


@dataclass
class Report:
    symbol: str
    venue: str
    start_ts: int
    end_ts: int
    fetched: int = 0  # M1 bars the venue sent
    stored: int = 0  # M1 bars written (new)
    gaps_repaired: int = 0  # of those, bars inside the span stored before this run
    requests: int = 0
    resumed_from_ts: int | None = None  # where the stored history ended and this run went on

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "venue": self.venue,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "fetched": self.fetched,
            "stored": self.stored,
            "gaps_repaired": self.gaps_repaired,
            "requests": self.requests,
            "resumed_from_ts": self.resumed_from_ts,
        }


# ---------------------------------------------------------------- planning and storing


def stored_minutes(conn: sqlite3.Connection, symbol: str, start: int, end: int) -> np.ndarray:
    rows = conn.execute(
        "SELECT ts_open FROM bars WHERE symbol = ? AND timeframe = 'M1' AND ts_open >= ? "
        "AND ts_open < ? ORDER BY ts_open",
        [symbol, start, end],
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def missing_runs(
    stored: np.ndarray, start: int, end: int, cls: AssetClass
) -> list[tuple[int, int]]:
    """[from, to) runs of consecutive M1 minutes in [start, end) without a stored bar while
    the market of `cls` was open."""
    grid = np.arange(-(-start // M1) * M1, end, M1, dtype=np.int64)
    missing = grid[~np.isin(grid, stored, assume_unique=True)]
    if cls is not AssetClass.CRYPTO and len(missing):
        missing = missing[np.fromiter((market_open(cls, t) for t in missing.tolist()), bool)]
    if len(missing) == 0:
        return []
    cuts = np.flatnonzero(np.diff(missing) != M1) + 1
    starts = np.r_[missing[:1], missing[cuts]]
    ends = np.r_[missing[cuts - 1], missing[-1:]] + M1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def store_page(
    conn: sqlite3.Connection, bars: np.ndarray, symbol: str, ny_close: bool = False
) -> int:
    """M1 `bars` of `symbol` not stored yet, with the higher timeframes of the periods they
    touch (H4 and D1 on New York's trading day when `ny_close`), written in one transaction;
    how many M1 bars were new."""
    if len(bars) == 0:
        return 0
    lo, hi = int(bars["ts_open"][0]), int(bars["ts_open"][-1]) + M1
    new = bars[~np.isin(bars["ts_open"], stored_minutes(conn, symbol, lo, hi))]
    if len(new) == 0:
        return 0
    parts = [new]
    first, last = int(new["ts_open"][0]), int(new["ts_open"][-1])
    for period in TIMEFRAMES.values():
        if period <= M1:
            continue  # every longer timeframe is a whole number of minutes
        a = bar_open(first, period, ny_close)
        b = bar_open(last, period, ny_close) + period
        both = np.concatenate([read_bars(conn, symbol, "M1", M1, a, b), new])
        both = both[np.argsort(both["ts_open"], kind="stable")]
        parts.append(aggregate(both, period, ny_close))
    write_bars(conn, np.concatenate(parts), [symbol])
    return len(new)


def backfill(
    conn: sqlite3.Connection,
    venue: Venue,
    symbol: str,
    start: int,
    end: int,
    progress: Progress | None = None,
    now_ns: int | None = None,
    ny_close: bool | None = None,
) -> Report:
    """Fetch and store `symbol`'s missing M1 bars in [start, end) (see the module's docstring).
    `ny_close`: the symbol keeps New York's trading day for its H4 and D1 bars (by default
    when its asset class is not crypto). VenueFailed (with the report so far) when the venue
    gives up; BadInput for a symbol the venue does not have."""
    now = time.time_ns() if now_ns is None else now_ns
    end = min(end, now // M1 * M1)  # closed bars only
    report = Report(symbol, venue.name, start, end)
    cls = venue.asset_class(symbol)
    if ny_close is None:
        ny_close = cls is not AssetClass.CRYPTO
    stored = stored_minutes(conn, symbol, start, end)
    runs = missing_runs(stored, start, end, cls)
    first = int(stored[0]) if len(stored) else None
    last = int(stored[-1]) if len(stored) else None
    if last is not None and any(a > last for a, _ in runs):
        report.resumed_from_ts = last + M1
    if progress is not None:
        progress.stage(f"{symbol} from {venue.name}", total=sum((b - a) // M1 for a, b in runs))
    try:
        for a, b in runs:
            inside = first is not None and last is not None and first < a and b <= last
            done = a
            for bars, upto in venue.pages(symbol, a, b):
                report.requests = venue.requests
                report.fetched += len(bars)
                n = store_page(conn, bars, symbol, ny_close)
                report.stored += n
                if inside:
                    report.gaps_repaired += n
                if progress is not None:
                    progress.advance(max(0, (min(upto, b) - done) // M1))
                done = max(done, upto)
    except VenueFailed as exc:
        exc.report = report
        raise
    finally:
        report.requests = venue.requests
    return report


def venue_of(settings: Settings, symbol: str) -> str | None:
    """ "binance" or "mt5": the venue whose symbols (or whose [[feeds]] table) list `symbol`."""
    for name, listed in (
        ("binance", settings.binance.symbols),
        ("mt5", settings.mt5.symbols),
        *((f.venue, f.symbols) for f in settings.feeds if f.venue != "sim"),
    ):
        if symbol in listed:
            return name
    return None


def open_venue(settings: Settings, venue: str) -> Venue:
    """The adapter of `venue` ("binance" or "mt5") from the settings; no request is made.
    ConfigError when this machine has no MetaTrader 5 module."""
    if venue == "binance":
        return BinanceVenue(make_client(settings.binance.rest_url, timeout_s=10.0))
    s = settings.mt5
    server = ServerClock(*parse_server_zone(s.server_timezone))
    return MT5Venue(Terminal(load_module(s), s), server)


def _backoff(attempt: int) -> float:
    return min(BACKOFF_S[0] * 2**attempt, BACKOFF_S[1])


# ---------------------------------------------------------------- Binance


def klines_as_bars(rows: list[Any]) -> np.ndarray:
    """Binance klines ([open time ms, open, high, low, close, volume, close time, quote volume,
    trades, ...]) as M1 bars."""
    bars = np.zeros(len(rows), dtype=BAR_DTYPE)
    if not rows:
        return bars
    bars["period_ns"] = M1
    bars["ts_open"] = [int(r[0]) * NS_PER_MS for r in rows]
    for k, name in enumerate(("open", "high", "low", "close"), start=1):
        bars[name] = [float(r[k]) for r in rows]
    bars["volume"] = [float(r[5]) for r in rows]
    bars["ticks"] = [int(r[8]) for r in rows]
    return bars


class BinanceVenue:
    """Binance spot klines through python-binance's client, weight and retries respected."""

    name = "binance"

    def __init__(
        self,
        client: Any,
        weight: RestWeight | None = None,
        sleep: Callable[[float], None] | None = None,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._client = client
        self._sleep = sleep or (lambda s: pause(s))
        self._weight = weight or RestWeight(sleep=self._sleep)
        self._attempts = attempts
        self.requests = 0

    def asset_class(self, symbol: str) -> AssetClass:
        return AssetClass.CRYPTO  # a symbol Binance does not list is refused by the first page

    def close(self) -> None:
        pass

    def pages(self, symbol: str, start: int, end: int) -> Iterator[tuple[np.ndarray, int]]:
        t = start
        while t < end:
            rows = self._klines(symbol, t // NS_PER_MS, end // NS_PER_MS - 1)
            try:
                bars = klines_as_bars(rows)
            except (TypeError, ValueError, IndexError) as exc:
                raise VenueFailed(f"Binance klines: an answer that is not klines ({exc})") from None
            bars = bars[(bars["ts_open"] >= t) & (bars["ts_open"] < end)]
            if len(bars) == 0:
                yield bars, end
                return
            upto = int(bars["ts_open"][-1]) + M1
            done = len(rows) < KLINES_PAGE or upto >= end
            yield bars, end if done else upto
            if done:
                return
            t = upto

    def _klines(self, symbol: str, start_ms: int, end_ms: int) -> list[Any]:
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        problem = "no answer"
        for attempt in range(self._attempts):
            try:
                self._weight.before(MAX_WAIT_S)
            except RestUnavailable as exc:
                raise VenueFailed(f"Binance klines: {exc}") from None
            self.requests += 1
            try:
                data = self._client.get_klines(
                    symbol=symbol,
                    interval="1m",
                    startTime=start_ms,
                    endTime=end_ms,
                    limit=KLINES_PAGE,
                )
            except BinanceAPIException as exc:
                headers = getattr(exc.response, "headers", {})
                self._weight.after(headers)
                retry = _retry_after(headers)
                if exc.status_code == 418:
                    raise VenueFailed(
                        f"Binance klines: IP banned (HTTP 418), retry after {retry} s"
                    ) from None
                if exc.status_code == 400 and exc.code == -1121:
                    raise BadInput(f"{symbol}: Binance does not list this symbol") from None
                if exc.status_code == 429:
                    if retry is None or retry > MAX_WAIT_S:
                        raise VenueFailed(
                            f"Binance klines: rate limited (HTTP 429), retry after {retry} s"
                        ) from None
                    problem = "rate limited (HTTP 429)"
                    self._sleep(retry)
                    continue
                if exc.status_code >= 500:
                    problem = f"HTTP {exc.status_code}"
                    self._sleep(_backoff(attempt))
                    continue
                message = f"HTTP {exc.status_code}: {exc.message}"
                raise VenueFailed(f"Binance klines: {message}") from None
            except (requests.RequestException, BinanceRequestException, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                self._sleep(_backoff(attempt))
                continue
            self._weight.after(getattr(self._client.response, "headers", {}))
            if not isinstance(data, list):
                raise VenueFailed("Binance klines: the answer is not a list")
            return data
        raise VenueFailed(f"Binance klines: {problem}, still after {self._attempts} attempts")


# ---------------------------------------------------------------- MetaTrader 5


def rates_as_bars(rates: np.ndarray, server: ServerClock) -> np.ndarray:
    """MT5 rates (time on the server clock, seconds) as M1 bars in UTC."""
    bars = np.zeros(len(rates), dtype=BAR_DTYPE)
    if len(rates) == 0:
        return bars
    bars["period_ns"] = M1
    bars["ts_open"] = server.to_utc(rates["time"].astype(np.int64) * 1000)
    for name in ("open", "high", "low", "close"):
        bars[name] = rates[name]
    bars["ticks"] = rates["tick_volume"].astype(np.int64)
    bars["volume"] = rates["real_volume"].astype(np.float64)
    return bars[np.argsort(bars["ts_open"], kind="stable")]


class MT5Venue:
    """MetaTrader 5 M1 rates, a UTC day per request, through one Terminal."""

    name = "mt5"

    def __init__(
        self,
        terminal: Terminal,
        server: ServerClock,
        sleep: Callable[[float], None] | None = None,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._terminal = terminal
        self._server = server
        self._sleep = sleep or (lambda s: pause(s))
        self._attempts = attempts
        self.requests = 0

    def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        problem = "no answer"
        for attempt in range(self._attempts):
            try:
                if not self._terminal.connected:
                    self._terminal.connect()
            except ConnectionLost as exc:
                problem = str(exc)
                self._sleep(_backoff(attempt))
                continue
            except CallFailed as exc:  # a refused login: retrying will not help
                raise VenueFailed(str(exc)) from None
            try:
                return call()
            except ConnectionLost as exc:
                problem = str(exc)
                self._sleep(_backoff(attempt))
        raise VenueFailed(f"{what}: {problem}, still after {self._attempts} attempts")

    def asset_class(self, symbol: str) -> AssetClass:
        try:
            info, _ = self._retrying("MetaTrader 5", lambda: self._terminal.select(symbol))
        except CallFailed:
            like = self._terminal.similar(symbol)
            hint = f" (it has {', '.join(like)})" if like else ""
            message = f"{symbol}: the MetaTrader 5 terminal has no such symbol{hint}"
            raise BadInput(message) from None
        return asset_class(info, catalogue_entry(symbol, default_instruments()))

    def close(self) -> None:
        self._terminal.close()

    def pages(self, symbol: str, start: int, end: int) -> Iterator[tuple[np.ndarray, int]]:
        t = start
        while t < end:
            u = min(end, (t // DAY + 1) * DAY)
            rates = self._rates(symbol, t, u)
            bars = rates_as_bars(rates, self._server)
            yield bars[(bars["ts_open"] >= t) & (bars["ts_open"] < u)], u
            t = u

    def _rates(self, symbol: str, start: int, end: int) -> np.ndarray:
        zone, shift = self._server.zone, self._server.shift
        frm = utc_to_server_ns(start, zone, shift) // NS_PER_SECOND
        to = utc_to_server_ns(end, zone, shift) // NS_PER_SECOND - 1  # the range is inclusive

        def ask() -> np.ndarray:
            self.requests += 1
            try:
                return self._terminal.call(
                    "copy_rates_range",
                    symbol,
                    TIMEFRAME_M1,
                    datetime.fromtimestamp(frm, UTC),
                    datetime.fromtimestamp(to, UTC),
                )
            except ConnectionLost:
                raise
            except CallFailed as exc:
                if exc.code == NOT_FOUND:  # no history in the range
                    return np.zeros(0, dtype=[("time", "<i8")])
                raise VenueFailed(str(exc)) from None

        rates = self._retrying("MetaTrader 5 copy_rates_range", ask)
        if len(rates) == 0:
            return np.zeros(0, dtype=MT5_RATES_DTYPE)
        return rates


MT5_RATES_DTYPE = np.dtype(  # what copy_rates_range returns
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
