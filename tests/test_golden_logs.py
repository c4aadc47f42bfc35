"""Two event logs pinned byte for byte: a seeded replay and a seeded simulated-market run.

The hashes were recorded on the engine before it was split into rooms (issue 5) and must not
move when code only moves. A change that means to alter behaviour updates a hash here and says
why in its commit. Issue 7 re-recorded both: latency drawn per order (uniform 50 to 200 ms),
slippage at the touch, brackets as orders of their own, costs from the account's model,
and sizes capped so the margin level stays at twice the margin call level. Issue 8 again:
each symbol's data-quality breaker (these runs inject faults at five times the default rate,
so the breakers open and refuse orders on faulty symbols); then the orchestrator's score in
every entry's event, with resized and refused signals, and its trend factor counting the
H1 bars the corridor now builds; the account limits count entries and judge equity.
Issue 9 (alerts): both logs now hold `alert` events, each right after the event that calls for
it (the faulty symbols' breakers opening and closing, the sim run's halt, flatten and resume),
so every later seq moved; the trading events themselves are unchanged.
Issue 9 also: the quality monitor now flags spreads above 10 times the
symbol's usual spread, and the replay's faulty crypto quotes carry four of them (BTCUSDT 3,
ETHUSDT 1), problems the feed breaker and the quality judge now see; the simulated-market run
has none and keeps its hash.
Issue 10 (A/B, the bandit): both re-recorded because the default experiment "ab" (A vs B) has
its bandit on: every entry of A and B carries its risk multiplier (`allocation`, share x 2,
1 until the first change) in `order_submitted`, and once both accounts have 10 trades
Thompson sampling shares the risk budget anew at each close (`allocation_changed` events),
so later sizes (the score's multiplier x the allocation, capped at 1), fills and seqs moved.
With
`ab.bandit = false` both runs give the earlier hashes (6ee186ec... and 8293c804...) byte for
byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine_data import replay

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import raw_events

T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01 00:00 UTC
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSDT", "ETHUSDT"]
ACCOUNTS = [
    {"name": "A", "params": {"fast": 3, "slow": 8, "atr_period": 5}},
    {"name": "B", "params": {"fast": 5, "slow": 13, "atr_period": 5}},
]

REPLAY_SHA256 = "735d135e05b010178dec24e6f98b2998b96c9d1e3b5ca70742c6050e9dd20e6b"
SIM_SHA256 = "e1b38d0c7d45066a7912b380530903d8245f13289b86486c4a22bf4a04431288"


def log_digest(conn) -> tuple[str, int]:
    h = hashlib.sha256()
    rows = raw_events(conn)
    for seq, ts, kind, account, payload in rows:
        h.update(f"{seq}\t{ts}\t{kind}\t{account}\t{payload}\n".encode())
    return h.hexdigest(), len(rows)


def test_a_seeded_replay_writes_the_pinned_event_log(make_settings, tmp_path: Path) -> None:
    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=42, fault_rate=0.01)
    ticks = generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, 300_000)
    settings = make_settings(accounts=ACCOUNTS, engine={"store_ticks": False})
    engine = replay(settings, ticks, tmp_path / "golden", batch=4096, symbols=SYMBOLS)
    digest, n = log_digest(engine.conn)
    engine.close()
    assert n > 200
    assert digest == REPLAY_SHA256


def test_a_seeded_simulated_market_writes_the_pinned_event_log(make_settings) -> None:
    from mikrobot_tui.engine import build_engine

    settings = make_settings(
        accounts=ACCOUNTS,
        sim={"seed": 5, "fault_rate": 0.01, "warmup_minutes": 30},
        engine={"store_ticks": False},
    )
    engine = build_engine(settings, clock=FrozenClock(T0))
    engine.start()
    market = engine.feed.market
    for _ in range(120):  # two simulated hours, a minute per batch
        Runner(engine).replay(iter([market.advance(market.now_ns + 60 * NS_PER_SECOND)]))
    engine.control.halt("golden")
    engine.control.flatten("golden")
    engine.control.resume("golden")
    Runner(engine).replay(iter([market.advance(market.now_ns + 600 * NS_PER_SECOND)]))
    digest, n = log_digest(engine.conn)
    engine.close()
    assert n > 200
    assert digest == SIM_SHA256
