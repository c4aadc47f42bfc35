"""Property: money is conserved. Every balance change is realized P&L minus commissions plus
swap, in netting and hedging accounts, whatever orders arrive and however ticks are batched;
and the state the events fold to is the live state."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from venue_harness import T0, Bench

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_MS, TICK_DTYPE
from mikrobot_tui.domain.orders import OrderIntent, OrderType, Side, TimeInForce

EXAMPLES = int(os.environ.get("MIKROBOT_HYPOTHESIS_EXAMPLES", "40"))  # more for a long hunt

order_st = st.fixed_dictionaries(
    {
        "at": st.integers(0, 59),
        "symbol": st.sampled_from(["EURUSD", "USDJPY", "EURGBP"]),
        "side": st.sampled_from([Side.BUY, Side.SELL]),
        "lots": st.sampled_from([0.1, 0.3, 0.5, 1.0]),
        "type": st.sampled_from(list(OrderType)),
        "offset": st.integers(-30, 30),  # pips from the mid for limits and stops
        "tif": st.sampled_from([TimeInForce.GTC, TimeInForce.IOC]),
        "close": st.booleans(),
        "bracket": st.booleans(),
    }
)


def market(seed: int, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = {"EURUSD": (0, 1.1, 0.0001), "USDJPY": (2, 150.0, 0.01), "EURGBP": (3, 0.86, 0.0001)}
    base["GBPUSD"] = (1, 1.25, 0.0001)
    rows = []
    for i in range(n):
        for sym, price, pip in base.values():
            mid = price + pip * rng.normal(0, 8) + pip * i * rng.normal(0, 1)
            ts = T0 + (i * 4 + sym + 1) * NS_PER_MS
            rows.append((ts, ts, sym, round(mid - pip, 5), round(mid + pip, 5), np.nan, np.nan))
    return np.array(rows, dtype=TICK_DTYPE)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    orders=st.lists(order_st, min_size=1, max_size=25),
    oms=st.sampled_from(["hedging", "netting"]),
    seed=st.integers(0, 10_000),
    batch=st.sampled_from([1, 7, 1000]),
    balance=st.sampled_from([1_000_000.0, 4_000.0]),  # small: rejections, calls, stop-outs
)
def test_every_balance_change_is_pnl_minus_costs(
    tmp_path_factory, orders, oms, seed, batch, balance
):
    b = drive(tmp_path_factory.mktemp("c"), orders, oms, seed, batch, balance)
    check_conservation(b, oms)


@settings(
    max_examples=max(EXAMPLES // 3, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    orders=st.lists(order_st, min_size=1, max_size=25),
    oms=st.sampled_from(["hedging", "netting"]),
    seed=st.integers(0, 10_000),
    balance=st.sampled_from([1_000_000.0, 4_000.0]),
)
def test_the_events_do_not_depend_on_the_batch_size(tmp_path_factory, orders, oms, seed, balance):
    logs = []
    for batch in (1, 5, 1000):
        b = drive(tmp_path_factory.mktemp("b"), orders, oms, seed, batch, balance)
        logs.append([(e.seq, e.ts, e.kind, e.account, e.payload) for e in b.events()])
    assert logs[0] == logs[1] == logs[2]


@settings(
    max_examples=max(EXAMPLES // 3, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    orders=st.lists(order_st, min_size=1, max_size=25),
    oms=st.sampled_from(["hedging", "netting"]),
    seed=st.integers(0, 10_000),
    flatten=st.booleans(),
)
def test_the_account_limits_bite_at_the_same_tick_in_any_batching(
    tmp_path_factory, orders, oms, seed, flatten
) -> None:
    """Tight limits on a small account (0.3% a day: 12 of 4,000) so REDUCING, breaches and
    flattens happen: their events, and all that follows, do not depend on the batching."""
    risk = {"daily_loss_pct": 0.3, "overall_loss_pct": 0.5, "flatten_on_breach": flatten}
    logs = []
    for batch in (1, 5, 1000):
        b = drive(tmp_path_factory.mktemp("l"), orders, oms, seed, batch, 4_000.0, risk)
        logs.append([(e.seq, e.ts, e.kind, e.account, e.payload) for e in b.events()])
    assert logs[0] == logs[1] == logs[2]
    states = {e[4]["to"] for e in logs[0] if e[2] is EventKind.ACCOUNT_STATE}
    event(f"states reached: {sorted(states)}")
    check_conservation(b, oms)


def drive(path, orders, oms, seed, batch, balance=1_000_000.0, risk=None) -> Bench:
    b = Bench(
        path,
        accounts={"A": {"oms": oms, "balance": balance}},
        symbols=["EURUSD", "GBPUSD", "USDJPY", "EURGBP"],
    )
    if risk is not None:
        b.with_limits(**risk)
    ticks = market(seed)
    by_time = sorted(orders, key=lambda o: o["at"])
    done = 0
    for o in by_time:
        upto = o["at"] * 4
        if upto > done:
            b.run(ticks[done:upto], batch)
            done = upto
        b.ms = int((ticks["ts_event"][done - 1] - T0) // NS_PER_MS) if done else 0
        inst = b.ledger.instrument(o["symbol"])
        mid = (
            b.quotes.mid(o["symbol"])
            or {"EURUSD": 1.1, "USDJPY": 150.0, "EURGBP": 0.86}[o["symbol"]]
        )
        level = inst.round_price(mid + o["offset"] * inst.pip_size)
        kw = {"type": o["type"], "tif": o["tif"]}
        if o["type"] in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            kw["price"] = level
        if o["type"] in (OrderType.STOP, OrderType.STOP_LIMIT):
            kw["trigger"] = level
        open_ = [p for p in b.account.positions.values() if p.symbol == o["symbol"]]
        if o["close"] and open_:
            pos = open_[0]
            kw.update(intent=OrderIntent.CLOSE, position_id=pos.position_id)
            b.submit(o["symbol"], pos.side.opposite, min(o["lots"], pos.lots), **kw)
            continue
        if o["bracket"]:
            sign = o["side"].sign
            kw.update(
                stop_loss=inst.round_price(mid - sign * 15 * inst.pip_size),
                take_profit=inst.round_price(mid + sign * 15 * inst.pip_size),
            )
        b.submit(o["symbol"], o["side"], o["lots"], **kw)
    b.run(ticks[done:], batch)
    return b


def check_conservation(b: Bench, oms: str) -> None:
    events = b.events()
    acct = b.account
    pnl = sum(
        e.payload["pnl"]
        for e in events
        if e.kind in (EventKind.POSITION_CLOSED, EventKind.POSITION_CHANGED) and "pnl" in e.payload
    )
    commission = sum(e.payload["commission"] for e in events if e.kind is EventKind.ORDER_FILLED)
    swap = sum(e.payload["amount"] for e in events if e.kind is EventKind.SWAP)
    assert acct.balance - acct.initial_balance == pytest.approx(pnl - commission + swap, abs=1e-6)
    assert acct.commission_paid == pytest.approx(commission, abs=1e-6)
    assert sum(t.pnl for t in acct.trades) == pytest.approx(pnl, abs=1e-6)
    refolded = b.refold().accounts["A"]
    assert refolded.positions == acct.positions
    assert refolded.working == acct.working
    assert refolded.balance == pytest.approx(acct.balance)
    if oms == "netting":
        symbols = [p.symbol for p in acct.positions.values()]
        assert len(symbols) == len(set(symbols))  # one position per symbol
    for pos in acct.positions.values():
        assert pos.lots > 0
