"""A cockpit database with fixed rows in every table the snapshot reads.

Built with the real schema and the real Writer, so the screen shows what an engine would have
written. The cockpit tests take any builder with this signature (path -> FixtureDB); a later
fixture may fill the file by running the real engine on a seeded simulated market instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mikrobot_tui.store.schema import COLUMNS, open_db
from mikrobot_tui.store.writer import Writer

NOW_NS = 1_709_562_600_000_000_000  # 2024-03-04 14:30:00 UTC
SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FixtureDB:
    path: Path
    now_ns: int  # the time the data describes: give it to a FrozenClock


DBBuilder = Callable[[Path], FixtureDB]

INSTRUMENTS = [
    # symbol, asset_class, base, quote, pip, tick, contract, lot_step, min_lot
    ("EURUSD", "forex", "EUR", "USD", 0.0001, 0.00001, 100_000, 0.01, 0.01),
    ("GBPUSD", "forex", "GBP", "USD", 0.0001, 0.00001, 100_000, 0.01, 0.01),
    ("USDJPY", "forex_jpy", "USD", "JPY", 0.01, 0.001, 100_000, 0.01, 0.01),
    ("XAUUSD", "metals", "XAU", "USD", 0.1, 0.01, 100, 0.01, 0.01),
    ("BTCUSDT", "crypto", "BTC", "USDT", 0.01, 0.01, 1, 1e-5, 1e-5),
    ("ETHUSDT", "crypto", "ETH", "USDT", 0.01, 0.01, 1, 1e-4, 1e-4),
]


def _walk(start: float, end: float, wiggle: float, n: int = 30) -> list[float]:
    """A fixed path from start to end with a zig-zag on top: a sparkline's worth of mids."""
    zig = (0.0, 1.0, 0.3, -0.6, 0.2, -1.0, 0.5)
    return [
        round(start + (end - start) * i / (n - 1) + wiggle * zig[i % len(zig)], 6) for i in range(n)
    ]


# symbol: (bid, ask, open_mid, spark) — rising, falling, flat and choppy markets.
LATEST = {
    "EURUSD": (1.08512, 1.08519, 1.08300, _walk(1.0830, 1.08515, 0.0002)),
    "GBPUSD": (1.26401, 1.26413, 1.26900, _walk(1.2690, 1.26407, 0.0003)),
    "USDJPY": (150.112, 150.125, 150.118, _walk(150.118, 150.118, 0.02)),
    "XAUUSD": (2083.45, 2083.80, 2071.20, _walk(2071.2, 2083.6, 2.5)),
    "BTCUSDT": (63_102.50, 63_104.10, 64_250.00, _walk(64_250, 63_103, 180)),
    "ETHUSDT": (3_412.08, 3_412.61, 3_388.00, _walk(3_388, 3_412.3, 6)),
}

QUALITY = [
    # symbol, score, ticks, rejects, spikes, gaps, latency_ms, last_problem, last_problem_s_ago
    ("BTCUSDT", 0.97, 48_211, 2, 0, 0, 41.0, "crossed quote", 310),
    ("ETHUSDT", 0.93, 30_877, 0, 1, 0, 44.5, "spike 6.1 sigma", 95),
    ("EURUSD", 0.99, 12_904, 0, 0, 0, 3.2, "", None),
    ("GBPUSD", 0.88, 11_250, 4, 1, 1, 5.9, "stale quote 4.2 s", 40),
    ("USDJPY", 0.62, 9_874, 17, 3, 4, 12.8, "timestamp from the past", 2),
    ("XAUUSD", 0.95, 7_410, 1, 0, 0, 7.7, "NaN price", 600),
]
# the score's parts: validity, spikes, gaps, latency, completeness (their product is the
# score), then the ticks expected and received over the score's window
QUALITY_PARTS = {
    "BTCUSDT": (0.97, 1.0, 1.0, 1.0, 1.0, 900.0, 905),
    "ETHUSDT": (1.0, 0.93, 1.0, 1.0, 1.0, 600.0, 610),
    "EURUSD": (1.0, 1.0, 1.0, 0.99, 1.0, 240.0, 250),
    "GBPUSD": (0.95, 1.0, 0.926, 1.0, 1.0, 240.0, 236),
    "USDJPY": (0.8, 0.95, 0.9, 1.0, 0.906, 240.0, 150),
    "XAUUSD": (0.95, 1.0, 1.0, 1.0, 1.0, 360.0, 355),
}

ACCOUNTS = [
    # name, currency, strategy, params, balance, equity, realized, unrealized, open, trades
    ("bos-a", "USD", "bos_retest", '{"rr": 2.0}', 10_184.20, 10_226.85, 184.20, 42.65, 2, 31),
    ("bos-b", "USD", "bos_retest", '{"rr": 3.0}', 9_912.40, 9_880.15, -87.60, -32.25, 1, 27),
    ("random", "USD", "random_entry", "{}", 9_975.00, 9_975.00, -25.00, 0.0, 0, 40),
]
# The margin side of each account, worked out from the positions and marks below:
# bos-a at 1:30 on EURUSD (0.5 x 100,000 x 1.08512 / 30) and 1:20 on gold (0.1 x 100 x 2,083.80
# / 20), bos-b at 1:3 on GBPUSD (0.3 x 100,000 x 1.26401 / 3 = 12,640.10 > its equity: margin
# call), random flat (no margin used: no level), netting.
MARGIN = {
    # name: used_margin, free_margin, margin_level, margin_call, call_level, leverage, oms
    "bos-a": (2_850.43, 7_376.42, 358.78, 0, 100.0, 30.0, "hedging"),
    "bos-b": (12_640.10, -2_759.95, 78.16, 1, 100.0, 3.0, "hedging"),
    "random": (0.0, 9_975.00, None, 0, 100.0, 30.0, "netting"),
}
LIMITS = {
    # name: trading_state, daily_loss_limit, daily_loss_used, heat, daily_floor, overall_floor,
    # trades_today (FTMO's 5% and 10% of a 10,000 start)
    "bos-a": ("ACTIVE", 500.0, 0.0, 0.87, 9_684.20, 9_000.0, 3),
    "bos-b": ("REDUCING", 500.0, 432.25, 0.51, 9_812.40, 9_000.0, 5),
    "random": ("HALTED", 500.0, 0.0, 0.0, 9_475.00, 9_000.0, 12),
}

POSITIONS = [
    # id, account, symbol, side, lots, entry, mark, upnl, sl, tp, opened_s_ago
    ("p-1", "bos-a", "EURUSD", "BUY", 0.50, 1.08401, 1.08512, 55.50, 1.08300, 1.08700, 1_800),
    ("p-2", "bos-a", "XAUUSD", "SELL", 0.10, 2082.18, 2083.80, -16.20, 2090.0, 2070.0, 600),
    ("p-3", "bos-b", "GBPUSD", "BUY", 0.30, 1.26508, 1.26401, -32.10, 1.26200, 1.27000, 900),
]

WORKING_ORDERS = [
    # account, order_id, symbol, side, type, lots, filled, price, trigger, tif, expire_in_s,
    # reduce_only, parent_id, oco_id, submitted_s_ago
    (
        "bos-a",
        "bos-a-000034",
        "EURUSD",
        "BUY",
        "limit",
        0.20,
        0.0,
        1.08200,
        None,
        "GTC",
        None,
        0,
        None,
        None,
        300,
    ),
    (
        "bos-a",
        "bos-a-000035",
        "XAUUSD",
        "SELL",
        "stop",
        0.10,
        0.0,
        None,
        2_075.00,
        "GTC",
        None,
        0,
        None,
        None,
        120,
    ),
    (
        "bos-b",
        "bos-b-000028",
        "GBPUSD",
        "BUY",
        "stop_limit",
        0.30,
        0.10,
        1.26650,
        1.26600,
        "GTD",
        3_600,
        0,
        None,
        None,
        60,
    ),
]

BREAKERS = [
    # name, state, failures, successes, opened_s_ago, retry_in_s
    ("binance-ws", "CLOSED", 0, 120, None, None),
    ("daily-loss", "CLOSED", 0, 0, None, None),
    ("order-rejects", "HALF_OPEN", 3, 1, 90, None),
    ("usdjpy-quality", "OPEN", 5, 0, 15, 45),
]

AB = [
    # experiment, variant, account, params, metric, trades, wins, win_rate, mean, std,
    # mean_low, mean_high, diff, diff_low, diff_high, ci_method, ci_level, ci_seed,
    # ci_resamples, t, welch p, test, always-valid p, alpha, share, bandit, verdict, reason
    (
        "ab",
        "A",
        "bos-a",
        "rr=2.0",
        "r",
        31,
        17,
        17 / 31,
        0.142,
        0.61,
        -0.07,
        0.36,
        None,
        None,
        None,
        "percentile_bootstrap",
        0.975,
        7,
        10_000,
        None,
        None,
        "welch_t",
        None,
        0.025,
        0.62,
        1,
        "control",
        "the control the others are compared with",
    ),
    (
        "ab",
        "B",
        "bos-b",
        "rr=3.0",
        "r",
        27,
        10,
        10 / 27,
        -0.051,
        0.88,
        -0.39,
        0.28,
        -0.193,
        -0.61,
        0.22,
        "percentile_bootstrap",
        0.975,
        7,
        10_000,
        -0.95,
        0.347,
        "welch_t",
        1.0,
        0.025,
        0.30,
        1,
        "collecting",
        "bos-a has 31 and bos-b 27 trades; 100 each are needed",
    ),
    (
        "ab",
        "C",
        "random",
        "-",
        "r",
        40,
        19,
        19 / 40,
        -0.018,
        0.55,
        -0.19,
        0.15,
        -0.16,
        -0.44,
        0.11,
        "percentile_bootstrap",
        0.975,
        7,
        10_000,
        None,
        None,
        "n/a: zero variance",
        None,
        0.025,
        0.08,
        1,
        "collecting",
        "bos-a has 31 and random 40 trades; 100 each are needed",
    ),
]


def _score(confidence: float, verdict: str, trend: float, record: float) -> dict:
    factors = [
        ("trend", trend, "H1 trend up, with the trade (EMA(20) 1.0841)"),
        ("atr", 1.0, "M5 ATR 6.2 pips, inside [4, 15]"),
        ("session", 1.0, "London/New York overlap, a session of EURUSD"),
        ("spread", 0.9, "spread 0.05 ATR (0 at 0.5)"),
        ("quality", 1.0, "data quality 1.000 (breaker below 0.95)"),
        ("record", record, "mean +0.40 R over the last 12"),
        ("signal", 1.0, "the strategy's own confidence 1.00"),
    ]
    return {
        "confidence": confidence,
        "verdict": verdict,
        "risk_multiplier": 1.0 if verdict == "approve" else confidence / 0.7,
        "factors": [
            {"name": n, "score": sc, "weight": 1.0, "contribution": sc / 7, "value": None, "why": w}
            for n, sc, w in factors
        ],
    }


# (seconds ago, account, kind, payload): the orchestrator's last decisions
DECISIONS = [
    (
        1500,
        "A",
        "order_submitted",
        {"symbol": "EURUSD", "side": "BUY", "lots": 0.55, "intent": "open",
         "strategy": "bos_retest(2,0.8)", "score": _score(0.84, "approve", 1.0, 0.7),
         "reason": "M5 broke up through the swing at 1.0842; M1 retested to 1.08425 and "
         "closed above it at 1.0846; ATR(M5) 6.2 pips"},
    ),
    (
        900,
        "B",
        "order_refused",
        {"symbol": "GBPUSD", "side": "SELL", "strategy": "ema_cross(8,34)",
         "score": _score(0.33, "refuse", 0.0, 0.2),
         "reason": "confidence 0.33 refuse: trend: H1 trend against the trade"},
    ),
    (
        600,
        "B",
        "order_submitted",
        {"symbol": "USDJPY", "side": "BUY", "lots": 0.41, "intent": "open",
         "strategy": "ema_cross(8,34)", "score": _score(0.62, "resize", 0.5, 0.5),
         "reason": "EMA(8) 150.21 crossed above EMA(34) 150.19"},
    ),
    (
        300,
        "A",
        "order_refused",
        {"symbol": "XAUUSD", "side": "SELL", "strategy": "bos_retest(2,0.8)",
         "score": _score(0.78, "approve", 1.0, 0.7), "reason": "at max positions (3/3)"},
    ),
]  # fmt: skip


def equity_minutes(now_ns: int, minutes: int = 90) -> list[tuple]:
    """Each account's equity a minute for the last `minutes`, ending at its equity above: a
    fixed wave with a drawdown in the middle (the chart's test data)."""
    import math

    rows = []
    start = now_ns // 60_000_000_000 * 60_000_000_000 - minutes * 60_000_000_000
    for name, _, _, _, balance, equity, *_ in ACCOUNTS:
        for k in range(minutes + 1):
            at = k / minutes
            value = balance + (equity - balance) * at - 40.0 * math.sin(math.pi * at) ** 2
            rows.append((name, start + k * 60_000_000_000, balance, round(value, 2), 0.0, None))
    return rows


def build_fixture_db(path: Path, now_ns: int = NOW_NS, trading_state: str = "ACTIVE") -> FixtureDB:
    """A database as a running simulated engine would have left it at `now_ns`."""
    db = open_db(path)
    conn = db.conn
    w = Writer(conn)
    w.upsert(
        "instruments",
        COLUMNS["instruments"],
        [(*row, 0.0) for row in INSTRUMENTS],  # min_notional
    )
    w.upsert("equity", COLUMNS["equity"], equity_minutes(now_ns))
    w.upsert(
        "latest",
        COLUMNS["latest"],
        [
            (s, now_ns - SECOND, now_ns - SECOND + 2_000_000, b, a, None, o, json.dumps(sp))
            for s, (b, a, o, sp) in LATEST.items()
        ],
    )
    w.upsert(
        "quality",
        COLUMNS["quality"],
        [
            (
                s,
                now_ns,
                sc,
                t,
                r,
                sp,
                g,
                lat,
                prob,
                None if ago is None else now_ns - ago * SECOND,
                *QUALITY_PARTS[s],
                None,  # latency_cp
                None,  # latency_cpk
                None,  # bar_completeness
                None,  # expected_bars
                None,  # window_bars
            )
            for s, sc, t, r, sp, g, lat, prob, ago in QUALITY
        ],
    )
    w.upsert(
        "accounts",
        COLUMNS["accounts"],
        [(*a, now_ns, *MARGIN[a[0]], *LIMITS[a[0]]) for a in ACCOUNTS],
    )
    w.upsert(
        "working_orders",
        COLUMNS["working_orders"],
        [
            (
                *o[:10],
                None if o[10] is None else now_ns + o[10] * SECOND,
                *o[11:14],
                now_ns - o[14] * SECOND,
            )
            for o in WORKING_ORDERS
        ],
    )
    w.upsert(
        "positions",
        COLUMNS["positions"],
        [(*p[:-1], now_ns - p[-1] * SECOND) for p in POSITIONS],
    )
    w.upsert(
        "breakers",
        COLUMNS["breakers"],
        [
            (
                n,
                st,
                f,
                ok,
                None if op is None else now_ns - op * SECOND,
                None if rt is None else now_ns + rt * SECOND,
                now_ns,
            )
            for n, st, f, ok, op, rt in BREAKERS
        ],
    )
    w.upsert(
        "ab",
        COLUMNS["ab"],
        [(*r, now_ns) for r in AB],
    )
    w.append(
        "events",
        ("seq", "ts", "kind", "account", "payload"),
        [
            (seq, now_ns - ago * SECOND, kind, acct, json.dumps(payload))
            for seq, (ago, acct, kind, payload) in enumerate(DECISIONS, start=1)
        ],
    )
    set_engine(conn, now_ns, trading_state=trading_state)
    w.flush()
    conn.close()
    return FixtureDB(path, now_ns)


def set_engine(conn, now_ns: int, trading_state: str = "ACTIVE", running: bool = True) -> None:
    """Write the engine row: a fresh heartbeat makes the cockpit show it as running.

    The host is not this machine's, so the cockpit trusts the heartbeat instead of the pid.
    """
    w = Writer(conn)
    w.upsert(
        "engine",
        COLUMNS["engine"],
        [
            (
                1,
                4242,
                "fixture-host",
                "SIMULATED",
                "sim",
                trading_state,
                int(running),
                now_ns - 3_600 * SECOND,
                now_ns,
                "0.1.0",
            )
        ],
    )
    w.flush()


# account, model, version, kind, label, batch AUC, batch log loss, online outcomes, online
# AUC, online log loss, skipped, drifted: one model as it should be, one whose inputs drifted
MODELS = [
    ("bos-a", "grab", 3, "gbm", "tp_first", 0.64, 0.612, 23, 0.58, 0.655, 12, []),
    ("bos-b", "grab", 3, "gbm", "tp_first", 0.64, 0.612, 0, None, None, 4, ["spread_atr"]),
]


def set_models(conn, now_ns: int, rows=MODELS) -> None:
    """Write the served models' snapshot rows, as an engine with models would have."""
    w = Writer(conn)
    w.upsert("models", COLUMNS["models"], [(*r[:-1], json.dumps(r[-1]), now_ns) for r in rows])
    w.flush()
