"""`mikrobot`: the cockpit, the headless engine, and remote control of a running engine.

One module per command group (run, control, config, history, model, report); the typer app is
assembled here.

Help and errors are plain text: typer's rich help shows every flag as `--flag <bool>` (its
options panel prints a type for flags too), and its boxed error panels are several lines of
non-ASCII. Usage errors are one line on stderr, exit 2. `-h` is `--help` everywhere, and the
global options `--config` and `--db` are accepted after the command too (that value wins).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mikrobot_tui import __version__
from mikrobot_tui.cli import backtest, config, control, db, history, model, report, run
from mikrobot_tui.cli.common import (
    ConfigOption,
    DbOption,
    Group,
    echo,
    last_resort,
    options,
    with_global_options,
)

PROG = "mikrobot"
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name=PROG,
    cls=Group,
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
    help="mikrobot: a terminal trading cockpit that paper-trades live markets.",
)


def _group(name: str, help: str) -> typer.Typer:
    """A command group (`mikrobot config ...`): plain help, `-h`, help when given no command."""
    group = typer.Typer(
        cls=Group, rich_markup_mode=None, context_settings=CONTEXT, help=help, no_args_is_help=True
    )
    app.add_typer(group, name=name)
    return group


config_app = _group("config", "Show or check the configuration.")
db_app = _group("db", "Back up, check or trim the database.")
history_app = _group(
    "history",
    "Import ticks and bars from files traders bring, backfill bars from a venue; export "
    "stored bars and ticks.",
)

model_app = _group(
    "model", "Train, list and show models of the house strategy's setups (bos_retest)."
)


def _version(value: bool) -> None:
    if value:
        echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    config_path: ConfigOption = None,
    db: DbOption = None,
    attach: Annotated[
        bool,
        typer.Option(
            "--attach", help="Open the cockpit on an engine already running in another process"
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Without a command: open the cockpit on config.toml's defaults (simulated market)."""
    options.config, options.db = config_path, db
    if ctx.invoked_subcommand is None:
        run.cockpit(attach)


for _command in (
    run.run,
    control.status,
    control.halt,
    control.resume,
    control.reduce,
    control.flatten,
    control.cancel,
    control.modify,
    control.decisions,
    control.alerts,
    report.report,
    backtest.backtest,
    control.ab,
    config.strategies,
):
    app.command()(with_global_options(_command))
config_app.command("show")(with_global_options(config.show))
config_app.command("check")(with_global_options(config.check))
for _command in (db.backup, db.check, db.retain):
    db_app.command()(with_global_options(_command))
history_app.command("import")(with_global_options(history.import_))
history_app.command("export")(with_global_options(history.export))
history_app.command("backfill")(with_global_options(history.backfill))
model_app.command("train")(with_global_options(model.train))
model_app.command("list")(with_global_options(model.list_))
model_app.command("show")(with_global_options(model.show))


def command() -> typer.core.TyperGroup:
    """The click group behind the app (for tests that walk every command)."""
    return typer.main.get_group(app)


def main() -> None:
    with last_resort():
        try:
            app(prog_name=PROG)
        except KeyboardInterrupt:
            sys.exit(130)
