"""Time cells into integer nanoseconds UTC (CONVENTIONS.md, "Time").

Epoch numbers carry their unit in their size, decided per value (a file may mix them):
below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
ISO-8601 without an offset is UTC. MT5's `YYYY.MM.DD` + `HH:MM[:SS[.mmm]]` is the broker's
server clock, converted with its zone (domain/timezones.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.data.importers.text import Checks
from mikrobot_tui.domain.timezones import server_to_utc_ns

if TYPE_CHECKING:
    import polars as pl

_UNITS = ((1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000), (np.inf, 1))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ns(values: np.ndarray) -> np.ndarray:
    """Epoch integers of any unit (per value) as nanoseconds."""
    out = values.astype(np.int64, copy=True)
    a = np.abs(values)
    low = 0.0
    for high, scale in _UNITS:
        if scale != 1:
            sel = (a >= low) & (a < high)
            out[sel] = values[sel] * scale
        low = high
    return out


def binance_ns(values: np.ndarray) -> np.ndarray:
    """Binance dump times: 16 digits microseconds, 13 milliseconds (per value)."""
    return np.where(values >= 10**15, values * 1_000, values * 1_000_000)


def any_ns(checks: Checks, k: int, name: str) -> np.ndarray:
    """Field k, epoch s/ms/us/ns (whole or decimal) or ISO-8601, as ns UTC; rejects the rest.

    Read as "int" (the first row held an epoch integer) the cells the reader could not take
    (a decimal or ISO time among integers) are parsed one by one; read as text, ISO times go
    through polars first and what it cannot infer one by one.
    """
    import polars as pl

    cells = checks.table.columns[k]
    n = len(cells)
    if cells.dtype == pl.Int64:
        null = cells.is_null().to_numpy()
        out = epoch_ns(cells.fill_null(0).to_numpy())
        if null.any():
            missing = checks.table.empty(k)
            checks.add(missing, f"{name} is missing")
            odd = np.flatnonzero(null & ~missing)
            _one_by_one(checks, out, odd, checks.table.cells(k, odd), name)
        return _positive(checks, out, name)
    out = np.zeros(n, dtype=np.int64)
    missing = cells.is_null().to_numpy()
    checks.add(missing, f"{name} is missing")
    whole = cells.cast(pl.Int64, strict=False)
    is_whole = whole.is_not_null().to_numpy()
    out[is_whole] = epoch_ns(whole.filter(pl.Series(is_whole)).to_numpy())
    iso = np.flatnonzero(~is_whole & ~missing)
    if len(iso):
        text = cells.gather(iso)
        try:
            parsed = text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False)
            ns = parsed.dt.epoch("ns").to_numpy()
            got = parsed.is_not_null().to_numpy()
        except Exception:  # polars could not infer one pattern: every cell the slow way
            ns, got = np.zeros(len(iso), dtype=np.int64), np.zeros(len(iso), dtype=bool)
        out[iso[got]] = ns[got]
        slow = text.filter(~pl.Series(got)).to_list()
        _one_by_one(checks, out, iso[~got], slow, name)
    return _positive(checks, out, name)


def _one_by_one(
    checks: Checks, out: np.ndarray, rows: np.ndarray, texts: list[str], name: str
) -> None:
    """Decimal epoch numbers and ISO times, cell by cell (the few the fast paths left)."""
    bad = np.zeros(len(out), dtype=bool)
    for i, value in zip(rows.tolist(), texts, strict=True):
        t = _decimal_ns(value)
        if t is None:
            t = _iso_ns(value)
        if t is None:
            bad[i] = True
        else:
            out[i] = t
    reason = f"{name} {{!r}} is not a time (ISO-8601 or epoch)"
    for i, value in zip(rows.tolist(), texts, strict=True):
        if bad[i]:
            checks.add(_only(len(out), i), reason.format(value))


def _only(n: int, i: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[i] = True
    return mask


def _decimal_ns(value: str) -> int | None:
    try:
        d = Decimal(value.strip())  # exact: a float would round ns away
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    size = abs(d)
    scale = 10**9 if size < 10**11 else 10**6 if size < 10**14 else 10**3 if size < 10**17 else 1
    return int((d * scale).to_integral_value())


def _positive(checks: Checks, ns: np.ndarray, name: str) -> np.ndarray:
    checks.add(ns <= 0, f"{name} is not after 1970")
    return ns


def _iso_ns(value: str) -> int | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    digits = ""
    if "." in text:  # keep nanoseconds that datetime (microseconds) cannot hold
        head, _, tail = text.partition(".")
        frac = tail
        zone = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                frac, zone = tail[:i], tail[i:]
                break
        digits = frac
        text = head + zone
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    seconds = (dt - _EPOCH) // timedelta(seconds=1)
    frac_ns = int((digits + "000000000")[:9]) if digits else 0
    return seconds * 1_000_000_000 + frac_ns


def mt5_ns(
    checks: Checks, date: pl.Series, time: pl.Series, zone: ZoneInfo, shift: timedelta
) -> np.ndarray:
    """MT5 `<DATE>` and `<TIME>` cells (server clock) as ns UTC."""

    checks.add(date.is_null().to_numpy(), "DATE is missing")
    checks.add(time.is_null().to_numpy(), "TIME is missing")
    both = date + " " + time
    parsed = both.str.to_datetime("%Y.%m.%d %H:%M:%S%.f", time_unit="ns", strict=False)
    server = parsed.dt.epoch("ns").fill_null(0).to_numpy().copy()  # polars' may be read-only
    bad = parsed.is_null().to_numpy().copy()
    if bad.any():  # bar exports write HH:MM; and cells with spaces around them
        rows = np.flatnonzero(bad)
        again = both.gather(rows).str.strip_chars()
        for fmt in ("%Y.%m.%d %H:%M:%S%.f", "%Y.%m.%d %H:%M"):
            got = again.str.to_datetime(fmt, time_unit="ns", strict=False)
            ok = got.is_not_null().to_numpy()
            server[rows[ok]] = got.dt.epoch("ns").to_numpy()[ok]
            bad[rows[ok]] = False
    checks.add(bad, lambda v: f"{v!r} is not a date and time (YYYY.MM.DD HH:MM:SS)", both)
    return server_ns_to_utc(np.where(bad, 0, server), zone, shift)


_BUCKET = 15 * 60 * 1_000_000_000  # clocks change on whole quarter hours of the server's clock


def server_ns_to_utc(server: np.ndarray, zone: ZoneInfo, shift: timedelta) -> np.ndarray:
    """Vectorised `server_to_utc_ns`: the offset is worked out once per quarter hour."""
    if len(server) == 0:
        return server.astype(np.int64)
    buckets, inverse = np.unique(server // _BUCKET, return_inverse=True)
    offsets = np.array(
        [server_to_utc_ns(int(b) * _BUCKET, zone, shift) - int(b) * _BUCKET for b in buckets],
        dtype=np.int64,
    )
    return server + offsets[inverse.reshape(-1)]
