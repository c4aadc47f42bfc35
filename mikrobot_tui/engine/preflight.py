"""What the engine refuses before it starts, checked without starting it.

Strategy parameters that do not fit their strategy, a database path that cannot be one,
accounts the database holds with other parameters, a feed that cannot be built, an external
signal source that could not start (a webhook without its secret). `build_engine`
and `mikrobot config check` both go through `check_runnable`, so a configuration that passes
the check is one `run` accepts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from mikrobot_tui.clock import Clock, LiveClock, ReplayClock
from mikrobot_tui.config import ConfigError, Settings, db_path_problem
from mikrobot_tui.data.feeds import Feed, build_feed
from mikrobot_tui.data.signals import sources as signals
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.engine.models import model_problem
from mikrobot_tui.store.queries import read_only
from mikrobot_tui.trading.strategies import Strategy, build_strategy


def changed_account(
    settings: Settings,
    strategies: dict[str, Strategy],
    recorded: dict[str, tuple[str, dict[str, float]]],
    db_path: Path,
) -> str | None:
    """An account's strategy and parameters are part of its record: an A/B comparison of
    trades made under different parameters would be wrong, so a change needs a new name."""
    for i, acct in enumerate(settings.accounts):
        known = recorded.get(acct.name)
        if known is None:
            continue
        wanted = (strategies[acct.name].name, dict(acct.params))
        if known != wanted:
            return (
                f"accounts[{i}] ({acct.name}): {db_path} holds this account with "
                f"{known[0]} {known[1]}, the configuration asks for "
                f"{wanted[0]} {wanted[1]}; give the account a new name or use a new --db"
            )
    return None


def _recorded_accounts(db_path: Path) -> dict[str, tuple[str, dict[str, float]]]:
    """Strategy and parameters of each account a database holds (its last ACCOUNT_OPENED)."""
    if not db_path.exists():
        return {}
    conn = read_only(str(db_path))
    try:
        rows = conn.execute(
            "SELECT account, payload FROM events WHERE kind = ? ORDER BY seq",
            (str(EventKind.ACCOUNT_OPENED),),
        ).fetchall()
    except sqlite3.OperationalError:  # a new file: no events table yet
        return {}
    finally:
        conn.close()
    recorded = {}
    for account, payload in rows:
        p = json.loads(payload)
        recorded[account] = (p.get("strategy", ""), dict(p.get("params", {})))
    return recorded


def check_runnable(settings: Settings, clock: Clock | None = None) -> Feed:
    """Everything the engine refuses before it starts, as a ConfigError naming the key.

    Strategy parameters that do not fit the strategy, a database path that cannot be one,
    accounts the database holds with other parameters, a feed that cannot be built (a replay
    file that is missing, unreadable or older than the database), an external signal source
    that could not start (a webhook without a secret, an EA file in a folder that is not
    there). `build_engine` and `mikrobot config check` both call this, so a configuration that
    passes the check is one `run` accepts. Returns the feed it built.
    """
    strategies = {}
    for i, acct in enumerate(settings.accounts):
        try:
            strategies[acct.name] = build_strategy(acct.strategy, dict(acct.params))
        except ValueError as exc:
            raise ConfigError(f"accounts[{i}] ({acct.name}).params: {exc}") from None
        model = str(getattr(strategies[acct.name], "model", "") or "")
        problem = model_problem(settings, i, model) if model else None
        if problem is not None:
            raise ConfigError(problem)
    db_path = Path(settings.engine.db)
    problem = db_path_problem(db_path, write=True)
    if problem is not None:
        raise ConfigError(f"engine.db: {problem}")
    feed = build_feed(settings, clock or clock_for(settings))
    if feed.mode != "REPLAY":  # a replay has no external signals
        signals.check(settings.signals)
    problem = changed_account(settings, strategies, _recorded_accounts(db_path), db_path)
    if problem is not None:
        raise ConfigError(problem)
    return feed


def clock_for(settings: Settings) -> Clock:
    return ReplayClock() if settings.engine.feed == "replay" else LiveClock()
