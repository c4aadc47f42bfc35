"""A generated EURUSD market made of break-of-structure episodes with a planted effect.

Each episode (about two hours of ticks, one every five seconds, on weekdays only) draws the
house strategy's setup on purpose:

1. a dip to a swing low S and back (an M5 swing low, width 2),
2. a rise to a swing high H and a fall from it: either a liquidity grab (the fall reaches a few
   pips below S inside one M5 bar and that bar closes back above S) or no grab (it turns a few
   pips above S),
3. a rise that closes an M5 bar above H (a bullish break of structure, the M5 ATR inside the
   strategy's gate),
4. a retest: back down to H within the tolerance, then an M1 candle closing up above H (the
   entry),
5. the outcome: up by 20 pips (the take-profit at 2.5 R comes first) with probability
   `p_grab` after a grab and `p_plain` without one, else down by 15 pips (the stop first).

Half the episodes are drawn upside down (bearish). Amplitudes and durations vary a little and
every tick carries noise, so the features differ from one episode to the next; only the grab
carries information about the outcome (when p_grab != p_plain).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mikrobot_tui.data.feeds import save_ticks
from mikrobot_tui.domain.market import TICK_DTYPE

PIP = 0.0001
STEP_S = 5
START_S = 1_767_571_200  # 2026-01-05 00:00 UTC, a Monday
WEEK_S = 7 * 86_400


@dataclass(frozen=True)
class Episode:
    start_ns: int
    end_ns: int
    bullish: bool
    grab: bool
    wins: bool


def _weekday_start(t: int) -> int:
    """t, or the next Monday 00:00 UTC when t falls after Friday 20:00 UTC (FX closes at 22:00
    in winter; an episode takes about two hours)."""
    into = (t - START_S) % WEEK_S
    if into >= 4 * 86_400 + 20 * 3_600:
        return t - into + WEEK_S
    return t


def _episode(rng: np.random.Generator, grab: bool, wins: bool) -> list[tuple[float, float]]:
    """Waypoints (minutes from the episode's start, pips from its base) of one bullish
    episode."""
    k = rng.uniform(1.7, 2.3)  # amplitude: an M5 ATR of 6 to 9 pips, inside the gate
    low, high = -8 * k, 10 * k
    dip = low - rng.uniform(2.5, 4) if grab else low + rng.uniform(3, 5)
    top = high + 5 * k
    return [
        (0, 0.0),
        (15, low),  # the swing low S
        (30, 0.0),
        (50, high),  # the swing high H
        (60, high - 6 * k),
        (68, dip),  # a grab below S (or a turn above it)...
        (70, low + 2),  # ...closed back above S inside the same M5 bar
        (95, top),  # the break: M5 closes above H
        (101, high + 0.3),  # the retest down to the level
        (103, high + 2.0),  # an M1 candle closing up above it: the entry
        (125, high + 2.0 + (20 if wins else -15)),  # the outcome
        (140, high + 2.0 + (20 if wins else -15)),
    ]


def planted_ticks(
    episodes: int,
    p_grab: float = 0.7,
    p_plain: float = 0.5,
    seed: int = 11,
    spread_pips: float = 0.5,
) -> tuple[np.ndarray, list[Episode]]:
    """The market's ticks (TICK_DTYPE, sym 0 = EURUSD), `episodes` episodes long, and what
    each episode was drawn to be."""
    rng = np.random.default_rng(seed)
    base = 1.10
    t = START_S
    chunks = []
    truth = []
    for _ in range(episodes):
        t = _weekday_start(t)
        grab = bool(rng.random() < 0.5)
        wins = bool(rng.random() < (p_grab if grab else p_plain))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        points = _episode(rng, grab, wins)
        minutes = np.array([m for m, _ in points], dtype=float)
        pips = np.array([p for _, p in points])
        steps = int(minutes[-1] * 60 // STEP_S)
        at = np.arange(steps) * STEP_S / 60
        path = np.interp(at, minutes, pips) + rng.normal(0, 0.15, steps)
        mid = base + sign * path * PIP
        ts = (t + np.arange(steps) * STEP_S).astype(np.int64) * 1_000_000_000
        chunk = np.zeros(steps, dtype=TICK_DTYPE)
        chunk["ts_event"] = ts
        chunk["ts_recv"] = ts
        chunk["bid"] = np.round(mid - spread_pips / 2 * PIP, 5)
        chunk["ask"] = np.round(mid + spread_pips / 2 * PIP, 5)
        chunks.append(chunk)
        truth.append(Episode(int(ts[0]), int(ts[-1]), sign > 0, grab, wins))
        base = float(np.clip(mid[-1], 1.0, 1.2))
        t += steps * STEP_S + 5 * 60  # a quiet gap of five minutes
    ticks = np.concatenate(chunks)
    ticks["last"] = np.nan  # quotes only, as an FX feed
    ticks["volume"] = np.nan
    return ticks, truth


def write_planted(path: Path, episodes: int, **kw: float) -> list[Episode]:
    ticks, truth = planted_ticks(episodes, **kw)
    save_ticks(path, ticks, ["EURUSD"])
    return truth
