"""`mikrobot`: the cockpit, the headless engine, and remote control of a running engine.

Output is plain ASCII so it survives any console encoding (invariant 6). Exit codes: 0 ok,
1 runtime failure (no engine, no answer), 2 bad input (configuration, arguments).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mikrobot_tui.config import ConfigError, Settings, load_settings, redacted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="mikrobot: a terminal trading cockpit that paper-trades live markets.",
)
config_app = typer.Typer(help="Show or check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class _Options:
    config: Path | None = None
    db: Path | None = None


_opts = _Options()


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def echo(text: str = "", err: bool = False) -> None:
    typer.echo(_ascii(text), err=err)


def fail(message: str, code: int = EXIT_RUNTIME) -> typer.Exit:
    echo(message, err=True)
    return typer.Exit(code)


def settings() -> Settings:
    overrides: dict[str, Any] = {}
    if _opts.db is not None:
        overrides["engine"] = {"db": _opts.db}
    try:
        return load_settings(_opts.config, overrides=overrides)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="config.toml to read (default ./config.toml)")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="SQLite file (overrides engine.db)")
    ] = None,
    attach: Annotated[
        bool,
        typer.Option(
            "--attach", help="Open the cockpit on an engine already running in another process"
        ),
    ] = False,
) -> None:
    """Without a command: open the cockpit on config.toml's defaults (simulated market)."""
    _opts.config, _opts.db = config, db
    if ctx.invoked_subcommand is None:
        _cockpit(attach)


def _started_engine(s: Settings) -> Any:
    from mikrobot_tui.engine import EngineBusy, build_engine

    try:
        engine = build_engine(s)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    try:
        engine.start()
    except EngineBusy as exc:
        engine.conn.close()
        raise fail(str(exc)) from None
    return engine


def _cockpit(attach: bool) -> None:
    s = settings()
    from mikrobot_tui.tui.app import CockpitApp

    engine = None if attach else _started_engine(s)
    CockpitApp(s.engine.db, engine=engine).run()
    if engine is not None:
        engine.close()


@app.command()
def run(
    headless: Annotated[
        bool, typer.Option("--headless", help="Run the engine without a screen")
    ] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Stop after S seconds")
    ] = None,
    every: Annotated[
        float, typer.Option("--every", min=0.5, help="Seconds between status lines")
    ] = 2.0,
) -> None:
    """Run the engine: the cockpit, or with --headless status lines on stdout."""
    if not headless:
        _cockpit(attach=False)
        return
    engine = _started_engine(settings())
    echo(
        f"mikrobot engine: {engine.feed.mode} feed {engine.feed.name}, "
        f"{len(engine.symbols)} symbols, db {engine.db_path}; "
        "Ctrl-C or SIGTERM stops it"
    )
    try:
        asyncio.run(_headless(engine, duration, every))
    finally:
        engine.close()
    echo(f"stopped: {_status_line(engine)}")


async def _headless(engine: Any, duration: float | None, every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(engine.run(stop, duration_s=duration))
    while not runner.done():
        await asyncio.wait({runner}, timeout=every)
        if not runner.done():
            echo(_status_line(engine))
    runner.result()


def _status_line(engine: Any) -> str:
    now = datetime.fromtimestamp(engine.clock.now_ns() / 1e9, tz=UTC).strftime("%H:%M:%S")
    parts = [
        f"{now}Z {engine.feed.mode} {engine.trading_state}",
        f"ticks {engine.ticks_in} rejects {engine.rejects} bars {engine.bars_closed}",
        f"events {engine.log.last_seq}",
    ]
    if engine.queue.dropped:
        parts.append(f"dropped {engine.queue.dropped} (engine fell behind the feed)")
    for acct in engine.state.accounts.values():
        parts.append(
            f"{acct.name}: bal {acct.balance:.2f} pos {len(acct.positions)} "
            f"trades {len(acct.trades)}"
        )
    opened = [b.name for b in engine.breakers if str(b.state) != "CLOSED"]
    parts.append("breakers " + (", ".join(opened) + " not closed" if opened else "all closed"))
    return " | ".join(parts)


# ---------------------------------------------------------------------------- remote control


def _reader(s: Settings):
    from mikrobot_tui.store.schema import open_db

    if not Path(s.engine.db).exists():
        raise fail(
            f"no database at {s.engine.db}: no engine has run here; start one with "
            "`mikrobot run --headless` or `mikrobot`"
        )
    return open_db(s.engine.db).conn


def _require_engine(conn: Any, db: Path) -> None:
    from mikrobot_tui.store.queries import engine_status

    status = engine_status(conn, time.time_ns())
    if not status.running:
        raise fail(
            f"no engine is running on {db}; start one with `mikrobot run --headless` "
            "(or `mikrobot` for the cockpit)"
        )


def _send(command: str, timeout: float = 3.0) -> tuple[str, Any]:
    """Send a command to the running engine; its answer and the open connection."""
    from mikrobot_tui.store import commands

    s = settings()
    conn = _reader(s)
    _require_engine(conn, s.engine.db)
    command_id = commands.send(conn, commands.Command(command), time.time_ns(), source="cli")
    row = commands.wait(conn, command_id, timeout)
    if row is None:
        raise fail(f"the engine did not answer {command!r} within {timeout:.0f} s")
    if row.status != "done":
        raise fail(f"{command} failed: {row.result}")
    return row.result or "done", conn


@app.command()
def halt() -> None:
    """Stop new orders and cancel working ones (positions stay open)."""
    echo(_send("halt")[0])


@app.command()
def resume() -> None:
    """Allow new orders again after a halt."""
    echo(_send("resume")[0])


@app.command()
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


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """What the engine is doing: prices, quality, accounts, positions, breakers, A/B."""
    from mikrobot_tui.domain.instruments import default_instruments, step_decimals
    from mikrobot_tui.store.queries import read_snapshot

    s = settings()
    conn = _reader(s)
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


# ---------------------------------------------------------------------------- configuration


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration as JSON, secrets redacted."""
    echo(json.dumps(redacted(settings()), indent=2, ensure_ascii=True, default=str))


@config_app.command("check")
def config_check() -> None:
    """Validate config.toml, the environment and .env; exit 2 naming each bad key."""
    s = settings()
    echo(
        f"configuration ok: feed {s.engine.feed}, db {s.engine.db}, "
        f"{len(s.accounts)} account(s), A/B {s.ab.a} vs {s.ab.b}"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
