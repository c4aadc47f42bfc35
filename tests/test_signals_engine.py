"""External signals through the engine on the simulated market: the same orchestrator, risk
checks and breakers as a strategy's, each decision on record with its source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mikrobot_tui.clock import FrozenClock, LiveClock
from mikrobot_tui.data.signals import ExternalSignal, Level
from mikrobot_tui.data.signals.ea_file import EAFileWatcher
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.paper.portfolio import fold
from mikrobot_tui.store.events import read_events

T0 = 1_767_225_600 * NS_PER_SECOND
SYMBOLS = ["EURUSD", "USDJPY", "BTCUSDT"]
BUY = {"id": "ea-1", "symbol": "EURUSD", "side": "buy", "sl_pips": 20, "tp_pips": 40}


@pytest.fixture
def settings(make_settings, tmp_path: Path):
    def make(**signals):
        return make_settings(
            sim={"symbols": SYMBOLS, "seed": 5, "faults": False, "warmup_minutes": 0},
            engine={"store_ticks": False},
            breakers={"failure_threshold": 3},
            signals={"ea_file": tmp_path / "signals.json", **signals},
        )

    return make


class Rig:
    """A started engine on the simulated market, its EA file and a watcher on it."""

    def __init__(self, settings) -> None:
        self.engine = build_engine(settings, clock=FrozenClock(T0))
        self.engine.start()
        self.path = Path(settings.signals.ea_file)
        self.watcher = EAFileWatcher(self.path, self.engine.intake.inbox, LiveClock())

    def write(self, value) -> None:
        self.path.write_text(json.dumps(value))
        self.watcher.poll()

    def step(self, seconds: float = 5) -> np.ndarray:
        market = self.engine.feed.market
        batch = market.advance(market.now_ns + round(seconds * NS_PER_SECOND))
        Runner(self.engine).replay(iter([batch]))
        return batch

    def events(self, *kinds: EventKind):
        """The events of these kinds; of orders, the decided ones (not a bracket's children,
        which the venue places when the entry fills)."""
        self.engine.writer.flush()
        return [
            e
            for e in read_events(self.engine.conn)
            if (not kinds or e.kind in kinds) and "parent_id" not in e.payload
        ]

    def rejects(self) -> list[tuple[str, str]]:
        self.engine.writer.flush()
        sql = "SELECT source, reason FROM rejects WHERE source LIKE 'ea:%' ORDER BY id"
        return self.engine.conn.execute(sql).fetchall()


ORDERS = (EventKind.ORDER_SUBMITTED, EventKind.ORDER_REFUSED)


def test_an_ea_signal_becomes_an_order_at_its_symbols_first_tick_with_its_source(
    settings,
) -> None:
    rig = Rig(settings())
    rig.write(BUY)
    batch = rig.step()
    (sub,) = rig.events(*ORDERS)
    assert sub.kind is EventKind.ORDER_SUBMITTED and sub.account == "A"
    p = sub.payload
    assert (p["source"], p["signal_id"], p["strategy"]) == (
        "ea:signals.json",
        "ea-1",
        "ea:signals.json",
    )
    first = batch[batch["sym"] == SYMBOLS.index("EURUSD")][0]
    assert sub.ts == first["ts_event"]
    assert p["stop_loss"] == pytest.approx(first["ask"] - 0.0020, abs=1e-9)  # from the ask
    assert p["take_profit"] == pytest.approx(first["ask"] + 0.0040, abs=1e-9)
    # 0.5% of 10,000 USD over 20 pips is 0.25 lots, scaled by the orchestrator's score and
    # rounded down to the lot step: an external signal is scored like a strategy's
    scale = p["score"]["risk_multiplier"]
    assert 0 < scale <= 1
    assert p["lots"] == pytest.approx(math.floor(0.25 * scale * 100 + 1e-9) / 100)
    opened = rig.events(EventKind.POSITION_OPENED)
    assert opened and opened[0].payload["strategy"] == "ea:signals.json"
    assert rig.engine.intake.counts.submitted == 1


def test_a_halted_engine_refuses_an_external_signal_with_the_reason(settings) -> None:
    rig = Rig(settings())
    rig.engine.control.halt("test")
    rig.write(BUY)
    rig.step()
    (refused,) = rig.events(*ORDERS)
    assert refused.kind is EventKind.ORDER_REFUSED
    assert refused.payload["reason"] == "trading halted: no new orders until resumed"
    assert refused.payload["source"] == "ea:signals.json"


def test_a_rewritten_signal_with_the_same_id_is_acted_on_once_also_after_a_restart(
    settings,
) -> None:
    s = settings()
    rig = Rig(s)
    rig.write(BUY)
    rig.step()
    rig.write({**BUY, "comment": "the EA wrote it again"})  # new bytes, the same id
    no_id = {"symbol": "USDJPY", "side": "sell", "sl_pips": 30}
    rig.write([BUY, no_id])  # grown by an id-less signal
    rig.step()
    rig.write([BUY, no_id])
    rig.step()
    assert [e.payload["symbol"] for e in rig.events(*ORDERS)] == ["EURUSD", "USDJPY"]
    assert rig.engine.intake.counts.duplicates == 2
    rig.engine.close()

    again = Rig(s)  # a new engine on the same database, a new watcher: the file is read anew
    assert again.watcher.poll() == 2
    again.step()
    assert [e.payload["symbol"] for e in again.events(*ORDERS)] == ["EURUSD", "USDJPY"]
    assert again.engine.intake.counts.duplicates == 2
    keys = again.engine.conn.execute("SELECT channel, key FROM signal_ids ORDER BY ts").fetchall()
    assert keys[0] == ("ea", "id:ea-1") and keys[1][1].startswith("sha256:")


def test_malformed_signals_are_rejected_with_reasons_until_the_breaker_opens(settings) -> None:
    rig = Rig(settings())
    for i in range(5):
        rig.write({"symbol": "EURUSD", "side": "buy", "n": i})  # no stop
    rig.step()
    rejects = rig.rejects()
    assert len(rejects) == 3  # then the breaker opened: the rest are only counted
    assert rejects[0] == (
        "ea:signals.json",
        "no stop: give sl (a price), sl_pips or sl_distance (fields not known here: n)",
    )
    (opened,) = [
        e for e in rig.events(EventKind.BREAKER_CHANGED) if e.payload["name"] == "signals:ea"
    ]
    assert opened.payload["new_state"] == "OPEN"
    assert "3 consecutive failures; last: no stop" in opened.payload["reason"]
    assert rig.engine.intake.counts.suppressed == 2
    rig.write(BUY)
    rig.step()
    (refused,) = rig.events(*ORDERS)
    assert refused.payload["reason"] == "circuit breaker signals:ea is open"
    rows = dict(rig.engine.conn.execute("SELECT name, state FROM breakers").fetchall())
    assert rows["signals:ea"] == "OPEN"  # in the cockpit's breakers pane
    state = fold(read_events(rig.engine.conn))
    assert state.breakers["signals:ea"]["new_state"] == "OPEN"  # and back after a restart


def test_signals_the_engine_cannot_take_are_refused_or_rejected_with_the_reason(
    settings,
) -> None:
    rig = Rig(settings())
    rig.write(
        [
            {"id": "1", "symbol": "GBPUSD", "side": "buy", "sl_pips": 10},
            {"id": "2", "symbol": "EURUSD", "side": "buy", "sl": 5.0},
            {"id": "3", "symbol": "EURUSD", "side": "sell", "sl_pips": 10, "tp": 9.0},
            {"id": "4", "symbol": "EURUSD", "side": "buy", "sl_pips": 10, "account": "Z"},
        ]
    )
    rig.step()
    reasons = {e.payload["signal_id"]: e.payload["reason"] for e in rig.events(*ORDERS)}
    assert reasons["1"].startswith("GBPUSD is not quoted by this engine's feed")
    assert reasons["2"].startswith("stop 5 is not below the entry")
    assert reasons["3"].startswith("take-profit 9 is not below the entry")
    assert set(reasons) == {"1", "2", "3"}
    ((source, reason),) = rig.rejects()
    assert source == "ea:signals.json"
    assert reason == "account 'Z' does not exist here; one of A, B"


def test_a_signal_waits_for_its_symbols_tick_and_no_longer_than_the_bound(settings) -> None:
    rig = Rig(settings())
    intake = rig.engine.intake
    wall = LiveClock().now_ns()
    for age_s, symbol in ((0, "BTCUSDT"), (61, "USDJPY")):
        intake.inbox.put(
            ExternalSignal(
                "ea:signals.json",
                symbol,
                Side.SELL,
                Level(0.5, "distance"),
                None,
                received_ns=wall - age_s * NS_PER_SECOND,
            )
        )
    intake.collect()
    assert [e.payload["reason"] for e in rig.events(*ORDERS)] == [
        "no quote of USDJPY within 60 s of the signal"
    ]
    assert [ext.symbol for ext, _ in intake.pending] == ["BTCUSDT"]
    rig.step()
    assert not intake.pending
    assert rig.events(*ORDERS)[-1].payload["symbol"] == "BTCUSDT"


def test_a_replay_has_no_external_sources(make_settings, tmp_path: Path) -> None:
    from engine_data import replay, waves

    s = make_settings(signals={"ea_file": tmp_path / "signals.json", "webhook": True})
    engine = replay(s, waves(200), tmp_path / "r", batch=50)
    assert engine.intake is None and engine.corridor.external is None
    assert not any(b.name.startswith("signals:") for b in engine.breakers)


def test_without_sources_the_engine_has_no_intake_and_no_signal_breakers(make_settings) -> None:
    engine = build_engine(make_settings(sim={"warmup_minutes": 0}), clock=FrozenClock(T0))
    assert engine.intake is None
    names = [b.name for b in engine.breakers]
    assert names[:4] == ["feed:sim", "strategy:A", "strategy:B", "orders"]
    assert all(n.startswith("quality:") for n in names[4:])  # one per symbol, nothing else
    engine.close()


# ---------------------------------------------------------------- a running engine

SECRET = "0123456789abcdef0123456789abcdef"


async def wait_for(predicate, timeout_s: float = 15.0) -> None:
    import asyncio
    import time

    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_a_running_engine_takes_webhook_and_ea_signals_and_refuses_them_halted(
    settings,
) -> None:
    import asyncio

    from test_signals_webhook import post, sign

    s = settings(webhook=True, webhook_port=0, webhook_secret=SECRET)
    engine = build_engine(s)
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(lambda: runner.sources and runner.sources[-1].port)
        port = runner.sources[-1].port
        decided = lambda: [  # noqa: E731  (a bracket's stop and target are not decisions)
            e for e in read_events(engine.conn) if e.kind in ORDERS and "parent_id" not in e.payload
        ]
        body = json.dumps({"id": "tv-1", "symbol": "BTCUSDT", "side": "buy", "sl_pips": 150})
        status, answer, _ = await asyncio.to_thread(post, port, body.encode(), sign(body.encode()))
        assert status == 202, answer
        await wait_for(lambda: len(decided()) == 1)
        Path(s.signals.ea_file).write_bytes(
            b"\xff\xfe" + json.dumps(BUY).encode("utf-16-le") + b"\x00\x00"
        )
        await wait_for(lambda: len(decided()) == 2)
        engine.control.halt("test")
        body = json.dumps({"id": "tv-2", "symbol": "EURUSD", "side": "sell", "sl_pips": 15})
        await asyncio.to_thread(post, port, body.encode(), sign(body.encode()))
        await wait_for(lambda: len(decided()) == 3)
    finally:
        stop.set()
        await task
    web, ea, halted = decided()
    assert (web.kind, web.payload["source"], web.payload["signal_id"]) == (
        EventKind.ORDER_SUBMITTED,
        "webhook:127.0.0.1",
        "tv-1",
    )
    assert (ea.kind, ea.payload["source"]) == (EventKind.ORDER_SUBMITTED, "ea:signals.json")
    assert halted.kind is EventKind.ORDER_REFUSED
    assert halted.payload["source"] == "webhook:127.0.0.1"
    assert halted.payload["reason"].startswith("trading halted")
    assert runner.sources == []  # stopped with the run
    with pytest.raises(ConnectionRefusedError):
        post(port, b"{}", {})
    engine.close()


def test_the_headless_engine_acts_on_an_ea_file_and_says_so(tmp_path: Path) -> None:
    import subprocess

    from test_headless import MIKROBOT, env

    db, signals = tmp_path / "h.db", tmp_path / "signals.json"
    signals.write_bytes(b"\xef\xbb\xbf" + json.dumps([BUY]).encode())
    run = subprocess.run(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "3", "--every", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(MIKROBOT_SIGNALS__EA_FILE=str(signals), MIKROBOT_SIM__WARMUP_MINUTES="0"),
    )
    assert run.returncode == 0, run.stderr
    assert "signals 1 orders 1 refused 0 rejected 0" in run.stdout.splitlines()[-1]
    from mikrobot_tui.store.schema import open_db

    events = list(read_events(open_db(db).conn))
    # the entry; its stop-loss and take-profit are the venue's orders once it fills
    (sub,) = [
        e for e in events if e.kind is EventKind.ORDER_SUBMITTED and "parent_id" not in e.payload
    ]
    assert sub.payload["source"] == "ea:signals.json"


def test_the_headless_engine_will_not_serve_the_webhook_without_a_secret(tmp_path) -> None:
    import subprocess

    from test_headless import MIKROBOT, env

    run = subprocess.run(
        [*MIKROBOT, "--db", str(tmp_path / "h.db"), "run", "--headless", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(MIKROBOT_SIGNALS__WEBHOOK="true"),
    )
    assert run.returncode == 2
    assert "MIKROBOT_SIGNALS__WEBHOOK_SECRET" in run.stderr + run.stdout
