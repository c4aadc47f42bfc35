"""The rows a model of the house strategy learns from: every `bos_retest` entry in the data
files, with its features and what happened after it.

Each file is backtested through the real engine (engine/backtest.py: the same quality checks,
candles, orchestrator, risk and paper venue as a paper run) with the strategy recording each
entry's setup and features (`BosRetest.record_setups`), into its own database in `work_dir`.
Then the labels (trading/models: `tp_first`, `retest_held`, `false_break`) come from that
run's event log and stored bars:

- `tp_first` follows the entry's own order: the first `order_submitted` of the backtest
  account on the setup's symbol and side in the minute the entry bar closed, and the
  `position_closed` of the position it opened: `take_profit` is 1, `stop_loss` 0; refused,
  never filled, still open at the end or closed otherwise (a stop-out, the end of the run)
  is NaN.
- `retest_held` looks at the HOLD_BARS M1 bars after the entry bar: 0 when one closes through
  the level by more than the strategy's tolerance (below level - tolerance for a buy), 1 when
  all of them are stored and none does, NaN when the data ends first.
- `false_break` looks at the FALSE_BREAK_BARS M5 bars after the break bar: 1 when one closes
  back through the level (below it after a bullish break), 0 when all are stored and none
  does, NaN when the data ends first.

The rows of all files are merged in time order.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.config import load_settings
from mikrobot_tui.data.history import bars
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import M1, M5
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine import backtest as bt
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.queries import read_only
from mikrobot_tui.trading.features import FEATURE_NAMES, SetupPoint
from mikrobot_tui.trading.models import FALSE_BREAK_BARS, HOLD_BARS, LABELS, Dataset
from mikrobot_tui.trading.strategies import BosRetest, build_strategy

STRATEGY = "bos_retest"
Setup = tuple[SetupPoint, np.ndarray]


def build_dataset(
    paths: Sequence[Path],
    params: dict[str, Any] | None = None,
    *,
    config: Path | None = None,
    work_dir: Path | None = None,
    symbol: str | None = None,
    parse: Callable[[Path, str | None], Any] | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
    latency_ms: float | None = None,
    no_costs: bool = False,
    trust_data: bool = False,
) -> Dataset:
    """Backtest `bos_retest` (with `params`) over each file and label its entries; see the
    module docstring. `work_dir` keeps the runs' databases (a new temporary folder when None);
    `progress(n)` after each batch of n ticks (`batch_size`: the replay's, default the
    engine's; the rows are the same whatever it is). BadInput (engine/backtest.py) for a file that
    cannot be read; ValueError for bad params."""
    params = dict(params or {})
    strategy = build_strategy(STRATEGY, params)  # bad params: refused before any replay
    assert isinstance(strategy, BosRetest)
    tolerance_pips = float(strategy.tolerance_pips)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="mb-ds-"))
    work.mkdir(parents=True, exist_ok=True)
    parts: list[tuple[list[Setup], dict[str, np.ndarray]]] = []
    for i, path in enumerate(paths):
        loaded = bt.load(Path(path), symbol, parse)
        db = work / f"{i + 1:03d}-{Path(path).stem}.db"
        settings = load_settings(
            config,
            overrides=bt.overrides(
                db,
                work / f"{i + 1:03d}-ticks.npz",
                STRATEGY,
                params,
                loaded.symbols,
                latency_ms=latency_ms,
                no_costs=no_costs,
                trust_data=trust_data,
            ),
            warn=lambda m: None,
        )
        setups: list[Setup] = []

        def attach(engine: Engine, setups: list[Setup] = setups) -> None:
            found = engine.strategies[bt.ACCOUNT]
            assert isinstance(found, BosRetest)
            found.record_setups(lambda point, x: setups.append((point, x)))

        bt.run(settings, loaded, batch_size=batch_size, progress=progress, prepare=attach)
        conn = read_only(str(db))
        try:
            parts.append((setups, _labels(conn, setups, tolerance_pips)))
        finally:
            conn.close()
    return _merged(parts, tuple(str(p) for p in paths))


def _labels(conn: Any, setups: list[Setup], tolerance_pips: float) -> dict[str, np.ndarray]:
    n = len(setups)
    out = {label: np.full(n, math.nan) for label in LABELS}
    entries, closes = _orders_and_closes(conn)
    instruments = default_instruments()
    m1: dict[str, np.ndarray] = {}
    m5: dict[str, np.ndarray] = {}
    for row, (p, _) in enumerate(setups):
        side = "BUY" if p.side > 0 else "SELL"
        order_id = next(
            (
                oid
                for ts, sym, sd, oid in entries
                if sym == p.symbol and sd == side and p.ts <= ts < p.ts + M1
            ),
            None,
        )
        reason = closes.get(order_id) if order_id is not None else None
        if reason in ("take_profit", "stop_loss"):
            out["tp_first"][row] = 1.0 if reason == "take_profit" else 0.0
        if p.symbol not in m1:
            m1[p.symbol] = bars(conn, p.symbol, "M1")
            m5[p.symbol] = bars(conn, p.symbol, "M5")
        tol = tolerance_pips * instruments[p.symbol].pip_size
        after = m1[p.symbol]
        after = after[after["ts_open"] >= p.ts][:HOLD_BARS]
        through = (
            (after["close"] < p.level - tol) if p.side > 0 else (after["close"] > p.level + tol)
        )
        out["retest_held"][row] = _outcome(through, HOLD_BARS, hit=0.0)
        later = m5[p.symbol]
        later = later[later["ts_open"] >= p.break_bar.ts_open + M5][:FALSE_BREAK_BARS]
        back = (later["close"] < p.level) if p.side > 0 else (later["close"] > p.level)
        out["false_break"][row] = _outcome(back, FALSE_BREAK_BARS, hit=1.0)
    return out


def _outcome(hits: np.ndarray, window: int, hit: float) -> float:
    """`hit` when any bar of the window hit; the other value when the whole window is there
    and none did; NaN when the data ended first."""
    if bool(hits.any()):
        return hit
    return 1.0 - hit if len(hits) == window else math.nan


def _orders_and_closes(conn: Any) -> tuple[list[tuple[int, str, str, str]], dict[str, str]]:
    """The backtest account's entry orders (ts, symbol, side, order_id), in log order, and
    how each position closed first (position id -> reason)."""
    entries: list[tuple[int, str, str, str]] = []
    closes: dict[str, str] = {}
    for event in read_events(conn, account=bt.ACCOUNT):
        payload = event.payload
        if event.kind is EventKind.ORDER_SUBMITTED and "parent_id" not in payload:
            if payload.get("intent", "open") == "open":
                entries.append((event.ts, payload["symbol"], payload["side"], payload["order_id"]))
        elif event.kind is EventKind.POSITION_CLOSED:
            closes.setdefault(payload["position_id"], payload.get("reason", "close"))
    return entries, closes


def _merged(
    parts: list[tuple[list[Setup], dict[str, np.ndarray]]], sources: tuple[str, ...]
) -> Dataset:
    setups = [s for found, _ in parts for s in found]
    features = np.vstack([x for _, x in setups]) if setups else np.zeros((0, len(FEATURE_NAMES)))
    labels = {
        label: np.concatenate([lab[label] for _, lab in parts] or [np.zeros(0)]) for label in LABELS
    }
    ts = np.array([p.ts for p, _ in setups], dtype=np.int64)
    symbols = np.array([p.symbol for p, _ in setups], dtype=str)
    order = np.argsort(ts, kind="stable")
    return Dataset(
        features=features[order],
        names=FEATURE_NAMES,
        labels={k: v[order] for k, v in labels.items()},
        ts=ts[order],
        symbols=symbols[order],
        sources=sources,
    )
