"""`mikrobot config show`, `mikrobot config check` and `mikrobot strategies`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mikrobot_tui.cli.common import EXIT_BAD_INPUT, echo, fail, settings
from mikrobot_tui.config import ConfigError, redacted


def show() -> None:
    """Print the effective configuration as JSON, secrets redacted."""
    echo(json.dumps(redacted(settings()), indent=2, ensure_ascii=True, default=str))


def check() -> None:
    """Validate config.toml, the environment and .env; exit 2 naming each bad key.

    Runs the same checks `run` runs before it starts (strategy parameters, the database path,
    the replay file), without starting anything.
    """
    from mikrobot_tui.engine import check_runnable

    s = settings()
    try:
        check_runnable(s)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    runs = s.effective_experiments()
    tests = "; ".join(f"{e.name}: {' vs '.join(e.variants)}" for e in runs) or "none"
    echo(
        f"configuration ok: feed {s.engine.feed}, db {s.engine.db}, "
        f"{len(s.accounts)} account(s), experiments {tests}"
    )


def strategies(
    as_json: Annotated[bool, typer.Option("--json", help="one object per strategy")] = False,
) -> None:
    """The strategies an account can run, with each parameter's type, default and range."""
    from mikrobot_tui.trading.strategies import STRATEGIES, strategy_specs

    catalogue = {name: [p.as_dict() for p in strategy_specs(name)] for name in sorted(STRATEGIES)}
    if as_json:
        echo(json.dumps([{"name": n, "params": ps} for n, ps in catalogue.items()], indent=2))
        return
    for name in catalogue:
        cls = STRATEGIES[name]
        echo(f"{name}  ({', '.join(getattr(cls, 'timeframes', (cls.timeframe,)))})")
        for p in strategy_specs(name):
            echo(f"  {p.name:<14} {p.describe():<44} {p.doc}")
