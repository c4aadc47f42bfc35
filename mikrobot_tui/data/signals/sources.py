"""Which external sources config.toml asks for: checked before the engine starts, built when
its live run starts (never for a replay, which has no outside world)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import ConfigError, SignalsSettings
from mikrobot_tui.data.signals import Inbox
from mikrobot_tui.data.signals.ea_file import EAFileWatcher
from mikrobot_tui.data.signals.webhook import Webhook, allowlist, secret_of


class Source(Protocol):
    name: str  # "ea" or "webhook": the channel, and its breaker's `signals:<name>`

    async def start(self) -> None:
        """Take what it needs (the webhook binds its port); ConfigError when it cannot."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver into the inbox until `stop` is set."""
        ...


def channels(settings: SignalsSettings) -> list[str]:
    """The channels config.toml turns on."""
    return [name for name, on in (("ea", settings.ea_file), ("webhook", settings.webhook)) if on]


def check(settings: SignalsSettings) -> None:
    """ConfigError naming the key for a source that could not start."""
    if settings.ea_file is not None:
        folder = Path(settings.ea_file).parent
        if not folder.is_dir():
            raise ConfigError(
                f"signals.ea_file: the folder {folder} does not exist; give the path the "
                "expert advisor writes to (MQL5/Files under the terminal's data folder)"
            )
    if settings.webhook:
        secret_of(settings)
        allowlist(settings)


def build_sources(settings: SignalsSettings, inbox: Inbox, clock: Clock) -> list[Source]:
    check(settings)
    sources: list[Source] = []
    if settings.ea_file is not None:
        sources.append(EAFileWatcher(settings.ea_file, inbox, clock, settings.ea_poll_ms / 1000))
    if settings.webhook:
        sources.append(Webhook(settings, inbox, clock))
    return sources
