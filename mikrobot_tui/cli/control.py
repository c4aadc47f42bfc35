"""Remote control of a running engine from any terminal: status, halt, resume, flatten."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Annotated

import typer

from mikrobot_tui.cli.common import EXIT_RUNTIME, echo, fail, reader, require_engine, settings

PATIENCE_S = 60.0  # how long a command waits out a database another process has locked


def _send(command: str, timeout: float = 3.0) -> tuple[str, sqlite3.Connection]:
    """Send a command to the running engine; its answer and the open connection.

    A database locked by another process delays the command, it does not lose it: the sender
    says so and waits (up to PATIENCE_S) while the engine is alive.
    """
    from mikrobot_tui.store import commands
    from mikrobot_tui.store.queries import engine_status

    s = settings()
    conn = reader(s)
    require_engine(conn, s.engine.db)
    said = False

    def waiting(why: str) -> None:
        nonlocal said
        if not said:
            echo(f"waiting: {why} (Ctrl-C to stop waiting)", err=True)
            said = True

    give_up = time.monotonic() + PATIENCE_S
    conn.execute("PRAGMA busy_timeout=500")  # say "waiting" soon rather than hang silently
    while True:
        try:
            command_id = commands.send(
                conn, commands.Command(command), time.time_ns(), source="cli"
            )
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise fail(f"{command} not sent: {s.engine.db}: {exc}") from None
            waiting(f"{s.engine.db} is locked by another process")

    def still_hoping() -> bool:
        status = engine_status(conn, time.time_ns())
        if status.running and status.db_problem and time.monotonic() < give_up:
            waiting(f"the engine has the command; {status.db_problem}")
            return True
        return False

    row = commands.wait(conn, command_id, timeout, still_hoping=still_hoping)
    if row is None:
        raise fail(f"the engine did not answer {command!r} within {timeout:.0f} s; withdrawn")
    if row.status == "running":
        raise fail(f"the engine took {command!r} but has not answered yet; see `mikrobot status`")
    if row.status != "done":
        raise fail(f"{command} {row.status}: {row.result}")
    return row.result or "done", conn


def halt() -> None:
    """Stop new orders and cancel working ones (positions stay open)."""
    echo(_send("halt")[0])


def resume() -> None:
    """Allow new orders again after a halt."""
    echo(_send("resume")[0])


def flatten(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait until flat")] = 5.0,
) -> None:
    """Close every open position at market."""
    if not yes and not typer.confirm("Close every open position at market?", default=False):
        raise fail("flatten cancelled", EXIT_RUNTIME)
    answer, conn = _send("flatten")
    echo(answer)
    deadline = time.monotonic() + wait
    while True:
        left = conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
        if left == 0:
            echo("flat: no open positions")
            return
        if time.monotonic() >= deadline:
            raise fail(f"{left} position(s) still open after {wait:.0f} s (no tick yet?)")
        time.sleep(0.1)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """What the engine is doing: prices, quality, accounts, positions, breakers, A/B."""
    from mikrobot_tui.domain.instruments import default_instruments, step_decimals
    from mikrobot_tui.store.queries import read_snapshot

    s = settings()
    conn = reader(s)
    snap = read_snapshot(conn, time.time_ns())
    if as_json:
        echo(json.dumps(snap.to_json(), indent=2, ensure_ascii=True, allow_nan=False, default=str))
        return
    e = snap.engine
    state = "running" if e.running else "not running"
    echo(f"engine: {state}  mode {e.mode}  trading {e.trading_state}  db {s.engine.db}")
    echo()
    echo(f"{'symbol':<9}{'bid':>14}{'ask':>14}{'spread':>9}{'chg%':>8}{'quality':>9}")
    tick = {i.symbol: i.tick_size for i in default_instruments().values()}
    for r in snap.symbols:
        q = "-" if r.quality is None else f"{r.quality:.2f}"
        d = step_decimals(tick.get(r.symbol, 1e-5))
        echo(
            f"{r.symbol:<9}{r.bid:>14.{d}f}{r.ask:>14.{d}f}{r.spread_pips:>9.1f}"
            f"{r.change_pct:>8.2f}{q:>9}"
        )
    echo()
    for a in snap.accounts:
        echo(
            f"account {a.name}: balance {a.balance:.2f} equity {a.equity:.2f} {a.currency}  "
            f"open {a.open_positions}  trades {a.trades}  ({a.strategy})"
        )
    if snap.positions:
        echo()
        for p in snap.positions:
            echo(
                f"  {p.account:<4}{p.symbol:<9}{p.side:<6}{p.quantity:>10g} "
                f"entry {p.entry_price:g} mark {'-' if p.mark is None else f'{p.mark:g}'} "
                f"pnl {p.unrealized_pnl:+.2f}"
            )
    echo()
    for b in snap.breakers:
        echo(f"breaker {b.name}: {b.state} failures {b.failures}")
    for v in snap.ab:
        p = "n/a" if v.p_value is None else f"{v.p_value:.3f}"
        echo(f"A/B {v.variant} ({v.account}): trades {v.trades} p-value {p}")
