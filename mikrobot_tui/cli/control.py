"""Remote control of a running engine from any terminal: status, halt, resume, flatten, and
cancel or modify a working order."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_RUNTIME,
    db_errors,
    echo,
    fail,
    iso_ns,
    reader,
    require_engine,
    settings,
)

if TYPE_CHECKING:
    from mikrobot_tui.store.queries import ModelRow

PATIENCE_S = 60.0  # how long a command waits out a database another process has locked


def _engine() -> tuple[sqlite3.Connection, Path]:
    """A connection to the database of a running engine, and its path; exit 1 saying why
    when none runs, 2 when the path cannot be a database."""
    s = settings()
    conn = reader(s, write=True)
    with db_errors(s.engine.db):
        require_engine(conn, s.engine.db)
    return conn, s.engine.db


def _send(conn: sqlite3.Connection, db: Path, command: str, timeout: float = 3.0) -> str:
    """Send a command to the running engine and return its answer (exit 1 unless done)."""
    row = _ask(conn, db, command, {}, timeout)
    if row.status != "done":
        raise fail(f"{command} {row.status}: {row.result}")
    return row.result or "done"


def _ask(
    conn: sqlite3.Connection, db: Path, command: str, args: dict[str, Any], timeout: float = 3.0
) -> Any:
    """Send a command to the running engine and return its answered row (a CommandRow).

    A database locked by another process delays the command, it does not lose it: the sender
    says so and waits (up to PATIENCE_S) while the engine is alive. Exit 1 when the engine
    does not answer.
    """
    from mikrobot_tui.store import commands
    from mikrobot_tui.store.queries import engine_status

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
                conn, commands.Command(command), time.time_ns(), source="cli", **args
            )
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                with db_errors(db):
                    raise
            waiting(f"{db} is locked by another process")

    def still_hoping() -> bool:
        status = engine_status(conn, time.time_ns())
        if status.running and status.db_problem and time.monotonic() < give_up:
            waiting(f"the engine has the command; {status.db_problem}")
            return True
        return False

    with db_errors(db):
        row = commands.wait(conn, command_id, timeout, still_hoping=still_hoping)
    if row is None:
        raise fail(f"the engine did not answer {command!r} within {timeout:.0f} s; withdrawn")
    if row.status == "running":
        raise fail(f"the engine took {command!r} but has not answered yet; see `mikrobot status`")
    return row


def halt() -> None:
    """Stop new orders and cancel working ones (positions stay open)."""
    echo(_send(*_engine(), "halt"))


def resume() -> None:
    """Allow new orders again after a halt or reduce (accounts halted by their limits too)."""
    echo(_send(*_engine(), "resume"))


def reduce() -> None:
    """Only orders that reduce exposure from now on (closes, stops, flatten) until resume."""
    echo(_send(*_engine(), "reduce"))


def flatten(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait until flat")] = 5.0,
) -> None:
    """Close every open position at market."""
    conn, db = _engine()  # before asking: no question when there is nothing to flatten
    if not yes and not typer.confirm("Close every open position at market?", default=False):
        raise fail("flatten cancelled", EXIT_RUNTIME)
    echo(_send(conn, db, "flatten"))
    deadline = time.monotonic() + wait
    while True:
        with db_errors(db):
            left = conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
        if left == 0:
            echo("flat: no open positions")
            return
        if time.monotonic() >= deadline:
            raise fail(f"{left} position(s) still open after {wait:.0f} s (no tick yet?)")
        time.sleep(0.1)


OrderId = Annotated[
    str, typer.Argument(help="The order's id, as `mikrobot status --json` lists it")
]
JsonAnswer = Annotated[bool, typer.Option("--json", help="The answer as one JSON object on stdout")]


def cancel(order_id: OrderId, as_json: JsonAnswer = False) -> None:
    """Cancel a working order (also while halted)."""
    _order_command("cancel", order_id, {}, as_json)


def modify(
    order_id: OrderId,
    price: Annotated[
        float | None, typer.Option("--price", help="New limit price (limit, stop-limit)")
    ] = None,
    trigger: Annotated[
        float | None, typer.Option("--trigger", help="New stop price (stop, stop-limit)")
    ] = None,
    lots: Annotated[
        float | None, typer.Option("--lots", help="New size, more than what has filled")
    ] = None,
    expire: Annotated[
        str | None,
        typer.Option(
            "--expire", help="Good till this time, ISO 8601, UTC unless it says (makes it GTD)"
        ),
    ] = None,
    as_json: JsonAnswer = False,
) -> None:
    """Change a working order's price, trigger, size or expiry (rounded to the instrument)."""
    changes: dict[str, Any] = {}
    for name, value in (("price", price), ("trigger", trigger), ("lots", lots)):
        if value is None:
            continue
        if not value > 0 or value == float("inf"):
            raise fail(f"--{name} must be a positive number, got {value:g}", EXIT_BAD_INPUT)
        changes[name] = value
    if expire is not None:
        changes["expire_ts"] = iso_ns(expire, "--expire")
    if not changes:
        raise fail("nothing to modify: give --price, --trigger, --lots or --expire", EXIT_BAD_INPUT)
    _order_command("modify", order_id, {"changes": changes}, as_json)


def _order_command(command: str, order_id: str, args: dict[str, Any], as_json: bool) -> None:
    """Send cancel or modify; the answer as text or JSON, exit 1 when the engine refused it."""
    from mikrobot_tui.store.queries import working_order

    conn, db = _engine()
    row = _ask(conn, db, command, {"order_id": order_id, **args})
    done = row.status == "done"
    if as_json:
        with db_errors(db):
            order = working_order(conn, order_id) if done else None
        doc = {
            "command": command,
            "order_id": order_id,
            "status": row.status,
            "result": row.result,
            "order": None if order is None else asdict(order),  # as it works now
        }
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False))
        if not done:
            raise typer.Exit(EXIT_RUNTIME)
        return
    if not done:
        raise fail(f"{command} {row.status}: {row.result}")
    echo(row.result or "done")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """What the engine is doing: prices, quality, accounts, positions, breakers, A/B, the
    models accounts trade by.

    With no engine running, the figures are those its last snapshot wrote: dated, not live.
    """
    from datetime import UTC, datetime

    from mikrobot_tui.domain.instruments import default_instruments, step_decimals
    from mikrobot_tui.store.queries import read_snapshot

    s = settings()
    conn = reader(s)
    now = time.time_ns()
    with db_errors(s.engine.db):
        snap = read_snapshot(conn, now)
    e = snap.engine
    # The engine writes its heartbeat with every snapshot of the read-side tables, so its
    # last heartbeat is when these figures were written.
    stale, as_of = not e.running, e.heartbeat_ts
    last_backup = _last_backup(conn)
    if as_json:
        doc = rounded({**snap.to_json(), "stale": stale, "as_of_ts": as_of})
        doc["last_backup"] = last_backup
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False, default=str))
        return
    state = "running" if e.running else "not running"
    echo(f"engine: {state}  mode {e.mode}  trading {e.trading_state}  db {s.engine.db}")
    if e.db_problem:
        echo(f"database problem: {e.db_problem}")
    if last_backup is not None:
        when = datetime.fromtimestamp(last_backup["ts"] / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")
        echo(f"last backup {when} UTC: {last_backup['outcome']}")
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
        level = "-" if a.margin_level is None else f"{a.margin_level:.1f}%"
        call = "  MARGIN CALL" if a.in_margin_call else ""
        echo(
            f"account {a.name}: balance {a.balance:.2f} equity {a.equity:.2f} {a.currency}  "
            f"margin level {level} free {a.free_margin:.2f}  open {a.open_positions}  "
            f"working {len(a.working_orders)}  trades {a.trades}  ({a.strategy}){call}"
        )
        if a.trading_state is not None:
            used = "-" if a.daily_loss_used is None else f"{a.daily_loss_used:.2f}"
            limit = "-" if a.daily_loss_limit is None else f"{a.daily_loss_limit:.2f}"
            heat = "-" if a.heat is None else f"{a.heat:.2f}%"
            echo(
                f"  limits: {a.trading_state}  daily loss {used} of {limit}  "
                f"heat {heat}  entries today {a.trades_today}"
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
    for f in snap.feeds:
        age = "-" if f.last_message_age_s is None else f"{f.last_message_age_s:.1f}s"
        p50 = "-" if f.latency_ms_p50 is None else f"{f.latency_ms_p50:.0f}ms"
        echo(
            f"feed {f.name} ({f.venue}): {f.state}  {f.msgs_per_s:.1f} msg/s  last {age} ago  "
            f"latency p50 {p50}  reconnects {f.reconnects}  conflated {f.conflated}"
            + (f"  ({f.detail})" if f.detail else "")
        )
    for b in snap.breakers:
        echo(f"breaker {b.name}: {b.state} failures {b.failures}")
    for v in snap.ab:
        p = "n/a" if v.p_value is None else f"{v.p_value:.3f}"
        avp = "n/a" if v.always_valid_p is None else f"{v.always_valid_p:.3f}"
        echo(
            f"A/B {v.experiment} {v.variant} ({v.account}): trades {v.trades} p-value {p} "
            f"always-valid p {avp} {v.verdict}"
        )
    for m in snap.models:
        echo(model_line(m))


def model_line(m: ModelRow) -> str:
    """A served model (store/queries.py ModelRow) on one line: batch against online."""

    def fig(x: float | None, digits: int) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    outcomes = f"{m.online_updates} outcome{'s' * (m.online_updates != 1)}"
    return (
        f"model {m.account}: {m.model} v{m.version} {m.kind}/{m.label}  "
        f"batch AUC {fig(m.batch_auc, 2)} (log loss {fig(m.batch_log_loss, 3)})  "
        f"online AUC {fig(m.online_auc, 2)} (log loss {fig(m.online_log_loss, 3)}) "
        f"over {outcomes}  skipped {m.skipped}  drift: {', '.join(m.drifted) or 'none'}"
    )


def decisions(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="How many, newest first")
    ] = 20,
    factors: Annotated[
        bool, typer.Option("--factors", help="Each decision's factors under it")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Why recent signals were traded or refused: the orchestrator's score, factor by factor."""
    from datetime import UTC, datetime

    from mikrobot_tui.store.queries import read_decisions

    s = settings()
    conn = reader(s)
    with db_errors(s.engine.db):
        rows = read_decisions(conn, limit)
    if as_json:
        doc = {"decisions": [asdict(r) for r in rows]}
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False, default=str))
        return
    if not rows:
        echo("no decisions yet: no strategy has signalled")
        return
    for r in rows:
        when = datetime.fromtimestamp(r.ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        conf = "-" if r.confidence is None else f"{r.confidence:.2f}"
        lots = "" if r.lots is None else f" {r.lots:g} lots"
        echo(
            f"{when} {r.account:<4}{r.side:<5}{r.symbol:<9}{r.outcome}{lots}  "
            f"confidence {conf}  {r.reason}"
        )
        if factors:
            for f in r.factors:
                echo(
                    f"    {f.get('name', ''):<8} score {float(f.get('score', 0.0)):.2f} "
                    f"x{float(f.get('weight', 0.0)):g} adds {float(f.get('contribution', 0.0)):.3f}"
                    f"  {f.get('why', '')}"
                )


def alerts(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=10_000, help="How many, newest first")
    ] = 20,
    severity: Annotated[
        str,
        typer.Option(
            "--severity", help="The least severe shown: info, warning or critical (default info)"
        ),
    ] = "info",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """What the operator must know: breakers, margin calls, limits, halts, newest first."""
    from datetime import UTC, datetime

    from mikrobot_tui.store.queries import ALERT_SEVERITIES, read_alerts

    if severity not in ALERT_SEVERITIES:
        raise fail(
            f"--severity: {severity!r} is not a severity; use one of {', '.join(ALERT_SEVERITIES)}",
            EXIT_BAD_INPUT,
        )
    s = settings()
    conn = reader(s)
    with db_errors(s.engine.db):
        rows = read_alerts(conn, limit, severity)
    if as_json:
        doc = {"alerts": [asdict(r) for r in rows]}
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False))
        return
    if not rows:
        echo(f"no alerts{'' if severity == 'info' else f' of {severity} or above'} yet")
        return
    for r in rows:
        when = datetime.fromtimestamp(r.ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        echo(f"{when} {r.severity.upper():<8} {r.title}: {r.text}")


def ab(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Each experiment's variants against the control: trades, win rate, mean with its
    bootstrap interval, Welch's p, the always-valid p, the bandit's allocation, the verdict."""
    from mikrobot_tui.store.queries import read_ab

    s = settings()
    conn = reader(s)
    with db_errors(s.engine.db):
        rows = read_ab(conn)
        as_of = conn.execute("SELECT MAX(ts) FROM ab").fetchone()[0]
    doc = {"as_of_ts": as_of, "experiments": ab_experiments(rows)}
    if as_json:
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False))
        return
    if not rows:
        echo("no experiment results yet: an engine writes them as it runs")
        return
    for e in doc["experiments"]:
        ci = e["ci"]
        echo(
            f"{e['name']} ({e['metric']}, alpha {e['alpha']:g} per comparison, bandit "
            f"{'on' if e['bandit'] else 'off'}; intervals: {ci['method']} {ci['level']:.1%} "
            f"seed {ci['seed']}, {ci['resamples']:,} resamples)"
            if ci
            else f"{e['name']} ({e['metric']})"
        )
        for v in e["variants"]:
            echo("  " + _ab_line(v, e["metric"]))


def _ab_line(v: dict[str, Any], metric: str) -> str:
    def num(x: float | None) -> str:
        if x is None:
            return "n/a"
        return f"{x * 100:+.3f}%" if metric == "return_pct" else f"{x:+.3f}R"

    def pair(ci: list[float] | None) -> str:
        return "" if ci is None else f" [{num(ci[0])}, {num(ci[1])}]"

    def p(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4g}"

    win = "n/a" if v["win_rate"] is None else f"{v['win_rate']:.1%}"
    diff = "" if v["diff"] is None else f"  diff {num(v['diff'])}{pair(v['diff_ci'])}"
    share = "n/a" if v["share"] is None else f"{v['share']:.0%}"
    return (
        f"{v['variant']} {v['account']}: {v['trades']} trades, win {win}, mean "
        f"{num(v['mean'])}{pair(v['mean_ci'])}{diff}  Welch p {p(v['welch_p'])}  "
        f"always-valid p {p(v['always_valid_p'])}  allocation {share}  {v['verdict']}"
        + (f" ({v['reason']})" if v["reason"] and v["verdict"] != "control" else "")
    )


def ab_experiments(rows: list[Any]) -> list[dict[str, Any]]:
    """`mikrobot ab --json`'s experiments: their settings as the engine ran them and a row
    per variant, the control first (the names are a contract)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = out.get(r.experiment)
        if e is None:
            ci = None
            if r.ci_method is not None:
                ci = {
                    "method": r.ci_method,
                    "level": r.ci_level,
                    "seed": r.ci_seed,
                    "resamples": r.ci_resamples,
                }
            e = out[r.experiment] = {
                "name": r.experiment,
                "metric": r.metric,
                "control": r.account,
                "alpha": r.alpha,  # per comparison: the configured alpha / (N - 1)
                "bandit": r.bandit,
                "tests": {"p": "welch_t", "always_valid_p": "msprt", "decides": "msprt"},
                "ci": ci,
                "variants": [],
            }
        e["variants"].append(
            {
                "variant": r.variant,
                "account": r.account,
                "params": r.params,
                "trades": r.trades,
                "wins": r.wins,
                "win_rate": r.win_rate,
                "mean": r.mean_return,
                "mean_ci": None if r.mean_low is None else [r.mean_low, r.mean_high],
                "diff": r.diff,
                "diff_ci": None if r.diff_low is None else [r.diff_low, r.diff_high],
                "welch_p": r.p_value,
                "welch": r.test,
                "always_valid_p": r.always_valid_p,
                "share": r.share,
                "verdict": r.verdict,
                "reason": r.reason,
            }
        )
    return list(out.values())


def _last_backup(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The scheduled backup's last outcome (engine/backups.py), None before the first."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'last_backup'").fetchone()
    try:
        doc = json.loads(row[0]) if row else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "ts" in doc and "outcome" in doc else None


PCT_DECIMALS = 4  # change_pct and mean_return are percentages: 0.1449 %
SCORE_DECIMALS = 4  # quality scores and win rates are fractions 0..1
P_DIGITS = 4  # p-values keep 4 significant digits: 0.0001234 stays 0.0001234


def rounded(doc: dict[str, Any]) -> dict[str, Any]:
    """`status --json` with floats as a person reads them: prices to the instrument's digits,
    money to cents, percentages and scores to a fixed number of decimals. Keys stay as they
    are (they are a contract); only the values' float noise goes."""
    from mikrobot_tui.domain.instruments import default_instruments, step_decimals

    catalogue = default_instruments()

    def digits(symbol: str) -> int | None:
        inst = catalogue.get(symbol)
        return None if inst is None else step_decimals(inst.tick_size)

    def r(value: Any, places: int | None) -> Any:
        if not isinstance(value, float) or places is None:
            return value
        return round(value, places)

    def sig(value: Any, figures: int) -> Any:
        return float(f"{value:.{figures}g}") if isinstance(value, float) else value

    for row in doc.get("symbols", []):
        d = digits(row["symbol"])
        row["bid"], row["ask"] = r(row["bid"], d), r(row["ask"], d)
        row["spark"] = [r(x, None if d is None else d + 1) for x in row["spark"]]  # mids
        row["spread_pips"] = r(row["spread_pips"], 1)
        row["change_pct"] = r(row["change_pct"], PCT_DECIMALS)
        row["quality"] = r(row["quality"], SCORE_DECIMALS)
    for row in doc.get("quality", []):
        row["score"] = r(row["score"], SCORE_DECIMALS)
        row["latency_ms"] = r(row["latency_ms"], 2)
        for key in (
            "validity",
            "spikes_part",
            "gaps_part",
            "latency_part",
            "completeness",
            "bar_completeness",
        ):
            row[key] = r(row.get(key), SCORE_DECIMALS)
        row["expected_ticks"] = r(row.get("expected_ticks"), 1)
        row["expected_bars"] = r(row.get("expected_bars"), 1)
        row["latency_cp"] = r(row.get("latency_cp"), 2)
        row["latency_cpk"] = r(row.get("latency_cpk"), 2)
    for row in doc.get("accounts", []):
        for key in ("balance", "equity", "realized_pnl", "unrealized_pnl"):
            row[key] = r(row[key], 2)
        for key in ("used_margin", "free_margin", "margin_level"):
            row[key] = r(row.get(key), 2)
        for order in row.get("working_orders", []):
            d = digits(order["symbol"])
            inst = catalogue.get(order["symbol"])
            lots = inst and step_decimals(inst.lot_step)
            order["lots"] = r(order["lots"], lots)
            order["filled_lots"] = r(order["filled_lots"], lots)
            order["price"], order["trigger"] = r(order["price"], d), r(order["trigger"], d)
    for row in doc.get("positions", []):
        d = digits(row["symbol"])
        inst = catalogue.get(row["symbol"])
        row["quantity"] = r(row["quantity"], inst and step_decimals(inst.lot_step))
        row["entry_price"], row["mark"] = r(row["entry_price"], d), r(row["mark"], d)
        row["unrealized_pnl"] = r(row["unrealized_pnl"], 2)
    for row in doc.get("ab", []):
        row["win_rate"] = r(row["win_rate"], SCORE_DECIMALS)
        for key in ("mean_return", "mean_low", "mean_high", "diff", "diff_low", "diff_high"):
            row[key] = r(row[key], PCT_DECIMALS)
        row["p_value"] = sig(row["p_value"], P_DIGITS)
        row["always_valid_p"] = sig(row["always_valid_p"], P_DIGITS)
    for row in doc.get("models", []):
        for key in ("batch_auc", "batch_log_loss", "online_auc", "online_log_loss"):
            row[key] = r(row[key], SCORE_DECIMALS)
    for row in doc.get("feeds", []):
        row["last_message_age_s"] = r(row["last_message_age_s"], 3)
        row["msgs_per_s"] = r(row["msgs_per_s"], 2)
        row["latency_ms_p50"] = r(row["latency_ms_p50"], 2)
        row["latency_ms_p99"] = r(row["latency_ms_p99"], 2)
    return doc
