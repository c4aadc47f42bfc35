"""The periods a report samples and breaks down by: UTC hours, trading days (17:00 New York
for markets with New York's hours, UTC days for crypto), weeks from Monday 00:00 UTC and
calendar months in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from mikrobot_tui.domain.bar_clock import bar_opens
from mikrobot_tui.domain.market import D1, H1

BREAKDOWNS = {"daily": "D", "weekly": "W", "monthly": "M"}
_WEEK = 7 * D1
_MONDAY = 4 * D1  # 1970-01-01 was a Thursday: Mondays are 4 days after it, modulo a week


def period_starts(ts: np.ndarray, unit: str, ny_close: bool) -> np.ndarray:
    """The start of the period holding each time: H (UTC hour), D (trading day), W (Monday
    00:00 UTC), M (calendar month, UTC)."""
    t = np.asarray(ts, dtype=np.int64)
    if unit == "H":
        return t // H1 * H1
    if unit == "D":
        return bar_opens(t, D1, ny_close)
    if unit == "W":
        return (t - _MONDAY) // _WEEK * _WEEK + _MONDAY
    if unit == "M":
        return (
            t.astype("datetime64[ns]")
            .astype("datetime64[M]")
            .astype("datetime64[ns]")
            .view(np.int64)
        )
    raise ValueError(f"unknown period {unit!r}")


def last_per_period(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each period's start and its last value (keys in time order)."""
    if keys.size == 0:
        return keys, np.asarray(values, dtype=float)[:0]
    last = np.flatnonzero(np.append(keys[1:] != keys[:-1], True))
    return keys[last], np.asarray(values, dtype=float)[last]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def breakdown(
    ts: np.ndarray, equity: np.ndarray, base: float, closes: np.ndarray, unit: str, ny: bool
) -> list[dict[str, Any]]:
    """P&L, return and trades closed per period, from the equity at each period's end."""
    keys, last = last_per_period(period_starts(ts, unit, ny), equity)
    closed_in = period_starts(closes, unit, ny)
    rows, before = [], base
    for k, e in zip(keys, last, strict=True):
        rows.append(
            {
                "start": iso(int(k)),
                "start_ts": int(k),
                "equity": float(e),
                "pnl": float(e - before),
                "return": float(e / before - 1.0) if before > 0 else None,
                "trades": int(np.count_nonzero(closed_in == k)),
            }
        )
        before = float(e)
    return rows
