"""Remote control of a running engine from any terminal: status, halt, resume, flatten."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Annotated

import typer

from mikrobot_tui.cli.common import EXIT_RUNTIME, echo, fail, reader, require_engine, settings


def _send(command: str, timeout: float = 3.0) -> tuple[str, sqlite3.Connection]:
    """Send a command to the running engine; its answer and the open connection."""
    from mikrobot_tui.store import commands

    s = settings()
    conn = reader(s)
    require_engine(conn, s.engine.db)
    command_id = commands.send(conn, commands.Command(command), time.time_ns(), source="cli")
    row = commands.wait(conn, command_id, timeout)
    if row is None:
        raise fail(f"the engine did not answer {command!r} within {timeout:.0f} s")
    if row.status != "done":
        raise fail(f"{command} failed: {row.result}")
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
    """What the engine is doing: prices, quality, accounts, positions, breakers, A/B.

    With no engine running, the figures are those its last snapshot wrote: dated, not live.
    """
    from datetime import UTC, datetime

    from mikrobot_tui.domain.instruments import default_instruments, step_decimals
    from mikrobot_tui.store.queries import read_snapshot

    s = settings()
    conn = reader(s)
    now = time.time_ns()
    snap = read_snapshot(conn, now)
    e = snap.engine
    # The engine writes its heartbeat with every snapshot of the read-side tables, so its
    # last heartbeat is when these figures were written.
    stale, as_of = not e.running, e.heartbeat_ts
    if as_json:
        doc = {**snap.to_json(), "stale": stale, "as_of_ts": as_of}
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False, default=str))
        return
    state = "running" if e.running else "not running"
    echo(f"engine: {state}  mode {e.mode}  trading {e.trading_state}  db {s.engine.db}")
    if stale:
        if as_of is None:
            echo("as of: never; no engine has written figures here")
        else:
            when = datetime.fromtimestamp(as_of / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            seconds = max(0, (now - as_of) // 1_000_000_000)
            unit, size = next(
                (u, n)
                for u, n in (("days", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
                if seconds >= 2 * n or n == 1
            )
            age = f"{seconds // size} {unit} ago"
            echo(f"as of {when} UTC ({age}), when the engine last wrote: not live")
        echo("quality is not scored while no engine runs (shown as -)")
    echo()
    echo(f"{'symbol':<9}{'bid':>14}{'ask':>14}{'spread':>9}{'chg%':>8}{'quality':>9}")
    tick = {i.symbol: i.tick_size for i in default_instruments().values()}
    for r in snap.symbols:
        q = "-" if r.quality is None or stale else f"{r.quality:.2f}"
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
