"""Alerts: what an operator must know, as events with a severity, derived in a real engine.

A replay with tight limits loses through an account's daily floor (REDUCING, a breach, HALTED,
flat); a faulty stream opens and closes quality breakers; the operator halts, flattens and
resumes. Each of those is followed by an `alert` event naming it, and a storm of the same
alert within a minute of market time is held back and counted in the next one.
"""

from __future__ import annotations

import json

from engine_data import FAST_ACCOUNTS, FULL_RISK, replay, waves
from test_engine import faulty_stream

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.alerts import derive
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import read_events

TIGHT = {"risk_per_trade": 0.01, "daily_loss_pct": 1.0, "flatten_on_breach": True}


def alerts_of(engine: Engine) -> tuple[list[Event], dict[int, Event]]:
    engine.writer.flush()
    log = list(read_events(engine.conn))
    return [e for e in log if e.kind is EventKind.ALERT], {e.seq: e for e in log}


def test_an_account_through_its_floor_alerts_reducing_breach_halt_and_flatten(
    make_settings, tmp_path
) -> None:
    settings = make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, paper={"latency_ms": 50}, risk=TIGHT
    )
    engine = replay(settings, waves(3000), tmp_path / "breach", batch=1000)
    alerts, by_seq = alerts_of(engine)
    engine.close()
    mine = [a for a in alerts if a.account == "A"]
    kinds = {a.payload["kind"]: a.payload for a in mine}
    assert kinds["account_reducing"]["severity"] == "warning"
    assert kinds["limit_breach"]["severity"] == "critical"
    assert "daily loss" in kinds["limit_breach"]["text"]
    assert kinds["account_halted"]["severity"] == "critical"
    assert kinds["flatten"]["severity"] == "info"
    for a in alerts:  # each names the event behind it, logged before it at the same time
        cause = by_seq[a.payload["seq"]]
        assert cause.seq < a.seq and cause.ts == a.ts and cause.account == a.account
        assert set(a.payload) == {"severity", "source", "kind", "title", "text", "seq"}
    breach = by_seq[kinds["limit_breach"]["seq"]]
    assert breach.kind is EventKind.LIMIT_VIOLATION and breach.payload["severity"] == "breach"
    # a refused order (severity "refused") is no alert
    refused = [e for e in by_seq.values() if e.kind is EventKind.LIMIT_VIOLATION]
    assert len(refused) > sum(a.payload["kind"] == "limit_breach" for a in alerts)


def test_quality_breakers_alert_when_they_open_and_when_they_close(make_settings, tmp_path):
    ticks, symbols = faulty_stream(12_000)
    s = make_settings(
        accounts=FAST_ACCOUNTS,
        engine={"store_ticks": False},
        breakers={"reset_timeout_s": 20, "success_threshold": 1},
    )
    engine = replay(s, ticks, tmp_path / "q", batch=5000, symbols=symbols)
    alerts, by_seq = alerts_of(engine)
    engine.close()
    opened = [a.payload for a in alerts if a.payload["kind"] == "breaker_opened"]
    closed = [a.payload for a in alerts if a.payload["kind"] == "breaker_closed"]
    assert opened and closed
    quality = [p for p in opened if p["source"].startswith("breaker:quality:")]
    assert quality and all(p["severity"] == "warning" for p in quality)
    assert all(p["severity"] == "critical" for p in opened if "breaker:feed:" in p["source"])
    assert all(p["severity"] == "info" for p in closed)
    assert any("quality score" in p["text"] for p in opened)
    # no HALF_OPEN alert, and at most one per (source, kind) per minute of market time
    changes = [e for e in by_seq.values() if e.kind is EventKind.BREAKER_CHANGED]
    assert len(opened) + len(closed) < len(changes)
    seen: dict[tuple[str, str], int] = {}
    for a in alerts:
        key = (a.payload["source"], a.payload["kind"])
        assert key not in seen or a.ts - seen[key] >= 60 * NS_PER_SECOND
        seen[key] = a.ts


def test_a_feeds_breaker_is_critical_and_a_strategys_a_warning() -> None:
    def change(name: str, old: str, new: str) -> Event:
        payload = {"name": name, "old_state": old, "new_state": new, "failures": 5}
        return Event(7, 1, EventKind.BREAKER_CHANGED, None, payload | {"reason": "stalled"})

    feed = derive(change("feed:binance", "CLOSED", "OPEN"))
    assert feed is not None and feed.severity == "critical" and "stalled" in feed.text
    strategy = derive(change("strategy:A", "CLOSED", "OPEN"))
    assert strategy is not None and strategy.severity == "warning"
    assert derive(change("feed:binance", "OPEN", "HALF_OPEN")) is None
    back = derive(change("feed:binance", "HALF_OPEN", "CLOSED"))
    assert back is not None and back.severity == "info"
    stop_out = derive(Event(8, 1, EventKind.STOP_OUT, "A", {"position_id": "p-1"}))
    call = derive(Event(9, 1, EventKind.MARGIN_CALL, "A", {"margin_level": 95.5}))
    assert stop_out is not None and stop_out.severity == "critical"
    assert call is not None and call.severity == "warning" and "95.5%" in call.text
    full = derive(Event(10, 1, EventKind.HALTED, None, {"source": "database full"}))
    assert full is not None and full.severity == "critical"


def test_a_storm_of_halts_is_held_back_and_counted_and_a_restart_remembers(
    make_settings, tmp_path
) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    ticks = waves(400)  # 500 s of market time
    first, later = ticks[:200], ticks[200:]  # the second part starts 250 s later
    engine = replay(settings, first, tmp_path / "storm", batch=100)
    for _ in range(3):  # all at the same market time
        engine.control.halt("operator")
        engine.control.resume("operator")
    alerts, _ = alerts_of(engine)
    halts = [a for a in alerts if a.payload["kind"] == "engine_halted"]
    assert [a.payload["severity"] for a in halts] == ["info"]  # the operator's: info
    assert len([a for a in alerts if a.payload["kind"] == "engine_resumed"]) == 1
    engine.close()

    # a restart on the same database learns the window from the log: still held back
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.data.feeds import ReplayFeed, save_ticks

    file = tmp_path / "later.npz"
    save_ticks(file, later, ["EURUSD", "USDJPY"])
    engine = Engine(settings, feed=ReplayFeed(file, batch_size=100), clock=ReplayClock())
    engine.start()
    engine.control.halt("limits", reason="five violations")  # same (source, kind): held back
    engine.control.resume("operator")
    Runner(engine).replay(iter([later]))  # market time moves on by minutes
    engine.control.halt("limits", reason="five violations")
    alerts, _ = alerts_of(engine)
    engine.close()
    halts = [a.payload for a in alerts if a.payload["kind"] == "engine_halted"]
    assert len(halts) == 2
    assert halts[1]["severity"] == "critical"  # the limits' halt
    assert "limits: five violations" in halts[1]["text"]
    # the two halts of the first run and the one after the restart were held back
    assert "(3 more like it held back since the last alert)" in halts[1]["text"]


def test_mikrobot_alerts_lists_them_newest_first_filtered_and_as_json(
    make_settings, tmp_path
) -> None:
    from test_cli import invoke

    settings = make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, paper={"latency_ms": 50}, risk=TIGHT
    )
    engine = replay(settings, waves(3000), tmp_path / "breach", batch=1000)
    alerts, _ = alerts_of(engine)
    engine.close()
    db = str(settings.engine.db)
    doc = json.loads(invoke("--db", db, "alerts", "--json", "-n", "1000").output)
    listed = doc["alerts"]
    assert [a["seq"] for a in listed] == sorted((a.seq for a in alerts), reverse=True)
    assert set(listed[0]) == {"seq", "ts", "severity", "source", "title", "text"}
    critical = json.loads(invoke("--db", db, "alerts", "--severity", "critical", "--json").output)
    assert critical["alerts"] and {a["severity"] for a in critical["alerts"]} == {"critical"}
    warning = json.loads(invoke("--db", db, "alerts", "--severity", "warning", "--json").output)
    assert {a["severity"] for a in warning["alerts"]} == {"warning", "critical"}
    out = invoke("--db", db, "alerts", "-n", "2").output
    out.encode("ascii")
    lines = out.splitlines()
    assert len(lines) == 2 and listed[0]["title"] in lines[0]
    assert lines[0].startswith("2026-01-01 ") and listed[0]["severity"].upper() in lines[0]
    bad = invoke("--db", db, "alerts", "--severity", "loud")
    assert bad.exit_code == 2 and "info, warning, critical" in bad.output
    assert "Traceback" not in bad.output


def test_mikrobot_alerts_without_a_database_says_so(tmp_path) -> None:
    from test_cli import invoke

    result = invoke("--db", str(tmp_path / "none.db"), "alerts")
    assert result.exit_code == 1 and "no database" in result.output
