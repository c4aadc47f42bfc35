"""`mikrobot`: the cockpit, the headless engine, and remote control of a running engine.

One module per command group (run, control, config); the typer app is assembled here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mikrobot_tui.cli import config, control, run
from mikrobot_tui.cli.common import options

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="mikrobot: a terminal trading cockpit that paper-trades live markets.",
)
config_app = typer.Typer(help="Show or check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    config_path: Annotated[
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
    options.config, options.db = config_path, db
    if ctx.invoked_subcommand is None:
        run.cockpit(attach)


app.command()(run.run)
app.command()(control.status)
app.command()(control.halt)
app.command()(control.resume)
app.command()(control.flatten)
config_app.command("show")(config.show)
config_app.command("check")(config.check)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
