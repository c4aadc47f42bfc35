"""The paper venue's two figures: an order's submit-to-fill cycle, and replay with 100 resting
orders.

    python -m benchmarks.paper [--cycles N] [--ticks N] [--repeat R]

1. Cycle: on a real SQLite file with the real Writer (flushed every 2,000 cycles, flushing
   timed), an order is submitted as the decisions room does (an `order_submitted` event
   through the ledger) and the venue matches it on the next tick of a batch and books it
   (`order_filled` and `position_opened` or `position_closed`, the trade row). Market orders
   alternate buy and sell on a hedging account's one position: open, close, open... The
   figure is the wall time per cycle, median of the repeats; a second figure does the same
   with a bracket (its stop-loss and take-profit placed, then cancelled by the close).
2. Throughput: the 1,000,000-tick replay of benchmarks.replay through the whole engine
   (strategies, candles, quality, the venue) with 100 resting limit and stop orders across
   the symbols, placed far enough away to stay working for the whole file, against the
   same replay without them. Ticks per second, median of the repeats, and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import tick_file

START_NS = 1_767_225_600_000_000_000 + 14 * 3600 * 1_000_000_000  # a Thursday afternoon


def cycles(n: int, bracket: bool) -> float:
    """Seconds per submit-to-fill cycle over n cycles."""
    from mikrobot_tui.config import AccountSettings, PaperSettings
    from mikrobot_tui.domain.events import EventKind
    from mikrobot_tui.domain.instruments import default_instruments
    from mikrobot_tui.domain.market import BAR_DTYPE, TICK_DTYPE
    from mikrobot_tui.domain.orders import Order, OrderIntent, Side
    from mikrobot_tui.paper.execution import BatchQuotes
    from mikrobot_tui.paper.ledger import Ledger
    from mikrobot_tui.paper.portfolio import EngineState, order_payload
    from mikrobot_tui.paper.quotes import LastQuotes
    from mikrobot_tui.paper.venue import Venue
    from mikrobot_tui.store.schema import open_db
    from mikrobot_tui.store.writer import Writer

    with tempfile.TemporaryDirectory() as tmp:
        conn = open_db(Path(tmp) / "cycle.db").conn
        writer = Writer(conn)
        quotes = LastQuotes(["EURUSD"])
        paper = PaperSettings(latency_model="fixed", latency_ms=0)
        ledger = Ledger(
            EngineState(),
            writer,
            default_instruments(),
            quotes,
            {},
            {"A": AccountSettings(name="A", balance=1e9)},
            paper,
        )
        payload = {"currency": "USD", "balance": 1e9, "strategy": "", "params": {}}
        ledger.emit(START_NS, EventKind.ACCOUNT_OPENED, "A", payload)
        venue = Venue(ledger)
        acct = ledger.state.accounts["A"]
        ticks = np.zeros(n + 1, dtype=TICK_DTYPE)
        ticks["ts_event"] = START_NS + np.arange(n + 1, dtype=np.int64) * 1_000_000
        ticks["ts_recv"] = ticks["ts_event"]
        ticks["bid"], ticks["ask"] = 1.10000, 1.10010
        ticks["last"], ticks["volume"] = np.nan, np.nan
        batch = BatchQuotes(ticks, quotes.bid, quotes.ask)
        venue.begin(batch, ticks["ts_event"].copy(), np.zeros(0, BAR_DTYPE), np.zeros(0, np.int64))
        gc.collect()
        gc.freeze()
        t0 = time.perf_counter()
        for i in range(n):
            venue.advance(i)  # what was decided before this tick fills at it
            ts = int(ticks["ts_event"][i])
            open_id = next(iter(acct.positions), None)
            order = Order(
                order_id=acct.next_order_id(),
                account="A",
                symbol="EURUSD",
                side=Side.SELL if open_id else Side.BUY,
                lots=1.0,
                intent=OrderIntent.CLOSE if open_id else OrderIntent.OPEN,
                ts_submitted=ts,
                due_ts=ts,
                position_id=open_id,
                stop_loss=1.09000 if bracket and not open_id else None,
                take_profit=1.11000 if bracket and not open_id else None,
            )
            ledger.emit(ts, EventKind.ORDER_SUBMITTED, "A", order_payload(order))
            if i % 2000 == 1999:
                writer.flush()
        venue.advance(n + 1)
        writer.flush()
        elapsed = time.perf_counter() - t0
        gc.unfreeze()
        assert len(acct.trades) >= n // 2 - 1, "every other cycle closes a trade"
        conn.close()
    return elapsed / n


def resting_orders(path: Path, count: int) -> list[dict]:
    """Limit and stop orders half the price away on each symbol: they rest all replay long."""
    from mikrobot_tui.data.feeds import load_ticks

    ticks, symbols = load_ticks(path)
    first = {s: ticks[ticks["sym"] == i][0] for i, s in enumerate(symbols)}
    kinds = [
        ("limit", "BUY", 0.5),
        ("limit", "SELL", 1.5),
        ("stop", "BUY", 1.5),
        ("stop", "SELL", 0.5),
    ]
    out = []
    for j in range(count):
        symbol = symbols[j % len(symbols)]
        kind, side, factor = kinds[(j // len(symbols)) % len(kinds)]
        mid = float(first[symbol]["bid"] + first[symbol]["ask"]) / 2
        out.append(
            {
                "symbol": symbol,
                "type": kind,
                "side": side,
                "level": mid * factor,
                "ts": int(ticks["ts_event"][0]),
            }
        )
    return out


def replay_rate(path: Path, orders: list[dict]) -> tuple[float, int]:
    """Ticks per second of the engine's replay, with these orders resting; and how many of
    them were still working at the end."""
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.config import load_settings
    from mikrobot_tui.data.feeds import ReplayFeed
    from mikrobot_tui.domain.events import EventKind
    from mikrobot_tui.domain.orders import Order, OrderIntent, OrderType, Side
    from mikrobot_tui.engine import Engine
    from mikrobot_tui.engine.runner import Runner
    from mikrobot_tui.paper.portfolio import order_payload

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None,
            overrides={
                "engine": {"feed": "replay", "db": Path(tmp) / "b.db", "store_ticks": False},
                "replay": {"file": path},
                "accounts": [{"name": "A", "balance": 1e9}, {"name": "B", "balance": 1e9}],
            },
        )
        feed = ReplayFeed(path, batch_size=settings.engine.batch_max)
        engine = Engine(settings, feed=feed, clock=ReplayClock())
        engine.start()
        ledger = engine.ledger
        acct = ledger.state.accounts["B"]
        ts = min((spec["ts"] for spec in orders), default=0)  # before the file's first tick
        for spec in orders:
            inst = ledger.instrument(spec["symbol"])
            level = inst.round_price(spec["level"])
            kind = OrderType(spec["type"])
            order = Order(
                order_id=acct.next_order_id(),
                account="B",
                symbol=spec["symbol"],
                side=Side(spec["side"]),
                lots=inst.min_lot,
                intent=OrderIntent.OPEN,
                ts_submitted=ts,
                due_ts=ts,
                type=kind,
                price=level if kind is OrderType.LIMIT else None,
                trigger=level if kind is OrderType.STOP else None,
            )
            ledger.emit(ts, EventKind.ORDER_SUBMITTED, "B", order_payload(order))
        gc.freeze()
        t0 = time.perf_counter()
        stats = Runner(engine).replay(feed.iter_batches())
        wall = time.perf_counter() - t0
        resting = sum(1 for o in acct.working.values() if o.parent_id is None)
        engine.close()
        gc.unfreeze()
    return stats.ticks_in / wall, resting


def figures(n_cycles: int = 20_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: microseconds per submit-to-fill cycle,
    plain and with a bracket."""
    return {
        "cycle_us": cycles(n_cycles, bracket=False) * 1e6,
        "bracket_cycle_us": cycles(n_cycles, bracket=True) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20_000)
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    plain = [cycles(args.cycles, bracket=False) for _ in range(args.repeat)]
    braced = [cycles(args.cycles, bracket=True) for _ in range(args.repeat)]
    us = statistics.median(plain) * 1e6
    print(f"submit to fill, market order, events included: {us:.1f} us per cycle (target < 20)")
    us = statistics.median(braced) * 1e6
    print(f"submit to fill with a bracket placed and cancelled: {us:.1f} us per cycle")

    path = tick_file(args.ticks)
    orders = resting_orders(path, args.orders)
    with_orders, without = [], []
    for _ in range(args.repeat):  # interleaved: the machine's noise hits both alike
        rate, resting = replay_rate(path, orders)
        with_orders.append(rate)
        without.append(replay_rate(path, [])[0])
    w, wo = statistics.median(with_orders), statistics.median(without)
    print(
        f"replay with {args.orders} resting limit and stop orders: {w:,.0f} ticks/s "
        f"(target 1,000,000; {resting} still working at the end)"
    )
    print(f"replay without them: {wo:,.0f} ticks/s; ratio {w / wo:.2f}")


if __name__ == "__main__":
    main()
