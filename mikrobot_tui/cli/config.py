"""`mikrobot config show` and `mikrobot config check`."""

from __future__ import annotations

import json

from mikrobot_tui.cli.common import echo, settings
from mikrobot_tui.config import redacted


def show() -> None:
    """Print the effective configuration as JSON, secrets redacted."""
    echo(json.dumps(redacted(settings()), indent=2, ensure_ascii=True, default=str))


def check() -> None:
    """Validate config.toml, the environment and .env; exit 2 naming each bad key."""
    s = settings()
    echo(
        f"configuration ok: feed {s.engine.feed}, db {s.engine.db}, "
        f"{len(s.accounts)} account(s), A/B {s.ab.a} vs {s.ab.b}"
    )
