"""`mikrobot config show` and `mikrobot config check`."""

from __future__ import annotations

import json

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
    echo(
        f"configuration ok: feed {s.engine.feed}, db {s.engine.db}, "
        f"{len(s.accounts)} account(s), A/B {s.ab.a} vs {s.ab.b}"
    )
