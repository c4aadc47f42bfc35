"""The operator cancels and modifies working orders; the read side shows margin and orders."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from engine_data import FAST_ACCOUNTS, replay, waves
from test_headless import MIKROBOT, env

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.orders import Order, OrderIntent, OrderType, Side, TimeInForce
from mikrobot_tui.paper.portfolio import apply, fold, order_payload
from mikrobot_tui.store import commands
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.queries import read_snapshot
from mikrobot_tui.store.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION

HOUR_NS = 3_600 * 1_000_000_000


@pytest.fixture
def engine(make_settings, tmp_path):
    settings = make_settings(accounts=FAST_ACCOUNTS)
    e = replay(settings, waves(600), tmp_path / "o", batch=300)
    yield e
    e.close()


def submit(
    engine,
    type: OrderType = OrderType.LIMIT,
    price: float | None = 1.0,  # far below EURUSD at about 1.10: it rests
    trigger: float | None = None,
    lots: float = 0.1,
    account: str = "A",
) -> Order:
    """A working order, as the venue would hold it, through the event log."""
    acct = engine.ledger.state.accounts[account]
    ts = engine.event_ts()
    order = Order(
        acct.next_order_id(),
        account,
        "EURUSD",
        Side.BUY,
        lots,
        OrderIntent.OPEN,
        ts,
        ts,
        type=type,
        price=price,
        trigger=trigger,
    )
    engine.ledger.emit(ts, EventKind.ORDER_SUBMITTED, account, order_payload(order))
    engine.read_side.write()
    return order


def ask(engine, command: commands.Command, **args) -> commands.CommandRow:
    cid = commands.send(engine.conn, command, ts=time.time_ns(), source="test", **args)
    assert engine.control.handle_commands() == 1
    return commands.get(engine.conn, cid)


def working(engine, account: str = "A") -> dict[str, Order]:
    return engine.ledger.state.accounts[account].working


def events(engine, kind: EventKind) -> list[Event]:
    return [e for e in read_events(engine.conn) if e.kind is kind]


def test_cancel_takes_a_working_order_off_the_venue_and_the_screen(engine) -> None:
    order = submit(engine)
    snap = read_snapshot(engine.conn, time.time_ns())
    (a,) = [a for a in snap.accounts if a.name == "A"]
    (row,) = [r for r in a.working_orders if r.order_id == order.order_id]  # brackets work too
    assert (row.order_id, row.type, row.side, row.price, row.tif) == (
        order.order_id,
        "limit",
        "BUY",
        1.0,
        "GTC",
    )
    answer = ask(engine, commands.Command.CANCEL, order_id=order.order_id)
    assert answer.status == "done" and order.order_id in answer.result
    assert "limit BUY 0.1 EURUSD @ 1" in answer.result
    assert order.order_id not in working(engine)
    last = events(engine, EventKind.ORDER_CANCELLED)[-1]
    assert last.payload == {"order_id": order.order_id, "reason": "operator"}
    snap = read_snapshot(engine.conn, time.time_ns())
    # answered after the snapshot
    assert all(r.order_id != order.order_id for a in snap.accounts for r in a.working_orders)


def test_cancel_and_modify_of_an_unknown_order_fail_saying_why(engine) -> None:
    before = engine.ledger.state.last_seq
    for command, args in (
        (commands.Command.CANCEL, {"order_id": "A-999999"}),
        (commands.Command.MODIFY, {"order_id": "A-999999", "changes": {"price": 1.0}}),
        (commands.Command.CANCEL, {}),
    ):
        answer = ask(engine, command, **args)
        assert answer.status == "failed"
        assert "no working order" in answer.result and "filled or cancelled" in answer.result
    assert engine.ledger.state.last_seq == before  # nothing logged


def test_modify_rounds_to_the_tick_and_the_lot_step_and_logs_the_changes(engine) -> None:
    order = submit(engine, lots=0.3)
    answer = ask(
        engine,
        commands.Command.MODIFY,
        order_id=order.order_id,
        changes={"price": 1.0123456, "lots": 0.257},
    )
    assert answer.status == "done", answer.result
    now = working(engine)[order.order_id]
    assert (now.price, now.lots) == (1.01235, 0.25)
    last = events(engine, EventKind.ORDER_MODIFIED)[-1]
    assert last.payload == {
        "order_id": order.order_id,
        "changes": {"price": 1.01235, "lots": 0.25},
        "reason": "operator",
    }
    (row,) = [
        r
        for r in next(
            a for a in read_snapshot(engine.conn, time.time_ns()).accounts if a.name == "A"
        ).working_orders
        if r.order_id == order.order_id
    ]
    assert (row.price, row.lots) == (1.01235, 0.25)
    # the fold of the log gives the same working order (invariant 3)
    assert fold(read_events(engine.conn)).accounts["A"].working == working(engine)


def test_a_new_expiry_makes_the_order_good_till_then(engine) -> None:
    order = submit(engine)
    expire = engine.event_ts() + HOUR_NS
    answer = ask(
        engine, commands.Command.MODIFY, order_id=order.order_id, changes={"expire_ts": expire}
    )
    assert answer.status == "done" and "GTD until" in answer.result
    now = working(engine)[order.order_id]
    assert (now.tif, now.expire_ts) == (TimeInForce.GTD, expire)
    past = ask(
        engine,
        commands.Command.MODIFY,
        order_id=order.order_id,
        changes={"expire_ts": engine.event_ts() - 1},
    )
    assert past.status == "failed" and "not in the future" in past.result


@pytest.mark.parametrize(
    ("type", "price", "trigger", "changes", "why"),
    [
        (OrderType.LIMIT, 1.0, None, {"trigger": 1.2}, "no trigger"),
        (OrderType.STOP, None, 1.2, {"price": 1.0}, "no limit price"),
        (OrderType.LIMIT, 1.0, None, {"lots": 0.001}, "below the minimum"),
        (OrderType.LIMIT, 1.0, None, {"lots": -1}, "positive number"),
        (OrderType.LIMIT, 1.0, None, {"price": "cheap"}, "must be a number"),
        (OrderType.LIMIT, 1.0, None, {"side": "SELL"}, "cannot modify side"),
        (OrderType.LIMIT, 1.0, None, {}, "nothing to modify"),
    ],
)
def test_modify_refuses_what_does_not_apply(engine, type, price, trigger, changes, why) -> None:
    order = submit(engine, type=type, price=price, trigger=trigger)
    before = engine.ledger.state.last_seq
    answer = ask(engine, commands.Command.MODIFY, order_id=order.order_id, changes=changes)
    assert answer.status == "failed" and why in answer.result, answer.result
    assert engine.ledger.state.last_seq == before
    assert working(engine)[order.order_id] == order


def test_a_stop_limit_takes_both_a_trigger_and_a_price(engine) -> None:
    order = submit(engine, type=OrderType.STOP_LIMIT, price=1.2, trigger=1.19)
    answer = ask(
        engine,
        commands.Command.MODIFY,
        order_id=order.order_id,
        changes={"trigger": 1.195, "price": 1.196},
    )
    assert answer.status == "done", answer.result
    now = working(engine)[order.order_id]
    assert (now.trigger, now.price) == (1.195, 1.196)


def test_lots_cannot_go_below_what_has_filled(engine) -> None:
    order = submit(engine, lots=0.5)
    # a partial fill, as the core's matcher will log it; folded here by hand
    oid = order.order_id
    acct = engine.ledger.state.accounts["A"]
    acct.working[oid] = replace(order, filled_lots=0.2)
    answer = ask(engine, commands.Command.MODIFY, order_id=oid, changes={"lots": 0.2})
    assert answer.status == "failed" and "already filled" in answer.result
    assert ask(engine, commands.Command.MODIFY, order_id=oid, changes={"lots": 0.3}).status == (
        "done"
    )


def test_while_halted_orders_can_be_cancelled_not_modified(engine) -> None:
    order = submit(engine)
    engine.control.halt("test")  # cancels the working orders that open positions
    assert order.order_id not in working(engine)
    order = submit(engine)
    answer = ask(engine, commands.Command.MODIFY, order_id=order.order_id, changes={"price": 1.01})
    assert answer.status == "failed" and "halted" in answer.result
    assert ask(engine, commands.Command.CANCEL, order_id=order.order_id).status == "done"


def test_the_order_modified_fold_replaces_the_order_and_an_expiry_means_gtd() -> None:
    state = fold([])
    apply(state, Event(1, 1, EventKind.ACCOUNT_OPENED, "A", {"balance": 1e4, "currency": "USD"}))
    order = Order(
        "A-1",
        "A",
        "EURUSD",
        Side.SELL,
        1.0,
        OrderIntent.OPEN,
        2,
        2,
        type=OrderType.LIMIT,
        price=1.2,
    )
    apply(state, Event(2, 2, EventKind.ORDER_SUBMITTED, "A", order_payload(order)))
    changes = {"price": 1.25, "expire_ts": 99}
    payload = {"order_id": "A-1", "changes": changes, "reason": "operator"}
    apply(state, Event(3, 3, EventKind.ORDER_MODIFIED, "A", payload))
    now = state.accounts["A"].working["A-1"]
    assert (now.price, now.expire_ts, now.tif, now.lots) == (1.25, 99, TimeInForce.GTD, 1.0)


def test_the_read_side_writes_margin_figures_per_account(engine) -> None:
    snap = read_snapshot(engine.conn, time.time_ns())
    for a in snap.accounts:
        acct = engine.ledger.state.accounts[a.name]
        m = engine.ledger.margin(acct)
        assert a.used_margin == round(m.used_margin, 2)
        assert a.free_margin == round(m.free_margin, 2)
        if acct.positions:
            assert a.margin_level == pytest.approx(a.equity / m.used_margin * 100, abs=0.01)
        else:
            assert a.margin_level is None and a.used_margin == 0.0
        assert a.margin_call is False and a.margin_call_level == 100.0
        # no account leverage: [paper.leverage] per asset class
        assert a.oms in ("hedging", "netting") and (a.leverage is None or a.leverage > 0)


def test_migration_5_adds_equity_working_orders_and_margin_columns(tmp_path: Path) -> None:
    import sqlite_utils

    from mikrobot_tui.store.schema import connect, migrate

    path = tmp_path / "v4.db"
    db = sqlite_utils.Database(connect(path))
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for version, step in enumerate(MIGRATIONS[:4], start=1):
        step(db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
    db.execute("INSERT INTO accounts (name, balance) VALUES ('A', 100.0)")
    assert migrate(db) == SCHEMA_VERSION == len(MIGRATIONS)
    assert db["equity"].pks == ["account", "ts"]
    assert db["working_orders"].pks == ["order_id"]
    assert COLUMNS["working_orders"][:6] == (
        "account",
        "order_id",
        "symbol",
        "side",
        "type",
        "lots",
    )
    row = db.execute("SELECT balance, used_margin, margin_level, oms FROM accounts").fetchone()
    assert row == (100.0, None, None, None)  # the old row stays, its new figures unknown
    snap = read_snapshot(db.conn, time.time_ns())
    assert snap.accounts[0].used_margin == 0.0 and snap.accounts[0].working_orders == []


def test_cancel_and_modify_from_another_terminal(engine, db_path: Path) -> None:
    """`mikrobot cancel` and `mikrobot modify` on a running engine: text, --json, exit codes."""
    engine.read_side.running = True  # as a live engine's lifecycle sets it
    engine.read_side.write()
    order = submit(engine, lots=0.3)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            [*MIKROBOT, "--db", str(db_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            engine.control.handle_commands()  # the engine's loop, here in the test
            engine.read_side.write()  # its heartbeat
            time.sleep(0.02)
        out, err = proc.communicate(timeout=5)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    done = cli("modify", order.order_id, "--price", "1.0012345", "--lots", "0.2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "done" and doc["command"] == "modify"
    assert doc["order"]["price"] == 1.00123 and doc["order"]["lots"] == 0.2
    assert doc["order"]["type"] == "limit" and doc["order"]["tif"] == "GTC"

    plain = cli("modify", order.order_id, "--expire", "2099-01-01T00:00")
    assert plain.returncode == 0, plain.stderr
    assert "GTD until 2099-01-01 00:00:00 UTC" in plain.stdout

    refused = cli("modify", order.order_id, "--trigger", "1.2")
    assert refused.returncode == 1 and "no trigger" in refused.stderr
    refused = cli("modify", order.order_id, "--trigger", "1.2", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "failed"

    bad = cli("modify", order.order_id)
    assert bad.returncode == 2 and "nothing to modify" in bad.stderr
    bad = cli("modify", order.order_id, "--expire", "tomorrow")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr

    status = json.loads(cli("status", "--json").stdout)
    (a,) = [a for a in status["accounts"] if a["name"] == "A"]
    assert {"used_margin", "free_margin", "margin_level", "working_orders"} <= a.keys()
    mine = [o for o in a["working_orders"] if o["order_id"] == order.order_id]
    assert len(mine) == 1 and mine[0]["tif"] == "GTD"
    assert f"working {len(a['working_orders'])}" in cli("status").stdout

    cancelled = cli("cancel", order.order_id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["order"] is None
    again = cli("cancel", order.order_id)
    assert again.returncode == 1 and "no working order" in again.stderr
