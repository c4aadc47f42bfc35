"""What every command shares: ASCII output, exit codes, the global options and the settings.

Output is plain ASCII so it survives any console encoding (invariant 6). Exit codes: 0 ok,
1 runtime failure (no engine, no answer), 2 bad input (configuration, arguments). No traceback
reaches the user: usage errors are one line, and anything unexpected is one line naming a
file that holds the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from typer.core import TyperGroup

from mikrobot_tui.config import ConfigError, Settings, db_path_problem, load_settings

try:  # typer >= 0.29 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import UsageError  # type: ignore[no-redef]

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class Options:
    """The global options (`--config`, `--db`), set by the app's callback and, when given
    after the command too, by the command (the later value wins)."""

    config: Path | None = None
    db: Path | None = None


options = Options()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="config.toml to read (default ./config.toml)"),
]
DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite file (overrides engine.db)")]

F = TypeVar("F", bound=Callable[..., Any])


def with_global_options(command: F) -> F:
    """`command` that also takes `--config` and `--db` after its name, like the app does
    before it: `mikrobot status --db x.db` is `mikrobot --db x.db status`."""
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def wrapper(
        *args: Any, global_config: Path | None = None, global_db: Path | None = None, **kw: Any
    ) -> Any:
        if global_config is not None:
            options.config = global_config
        if global_db is not None:
            options.db = global_db
        return command(*args, **kw)

    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint in (("global_config", ConfigOption), ("global_db", DbOption))
    ]
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    wrapper.__annotations__ = {
        **get_type_hints(command, include_extras=True),
        "global_config": ConfigOption,
        "global_db": DbOption,
    }
    return wrapper  # type: ignore[return-value]


_FLAG_VALUES = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"}


class OneLineUsageError(UsageError):
    """A usage error as one line on stderr, with the command's --help to read."""

    def show(self, file: Any = None) -> None:
        where = f" (see `{self.ctx.command_path} --help`)" if self.ctx is not None else ""
        echo(f"error: {self.message}{where}", err=True)


class Group(TyperGroup):
    """The app's command groups: usage errors become one line (a flag given a value says so)."""

    argv: list[str] | None = None

    def main(self, args: Any = None, *rest: Any, **kw: Any) -> Any:
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kw)

    def make_context(self, *args: Any, **kw: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kw)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except OneLineUsageError:
        raise
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mikrobot config`: the help, as is
            raise
        message = exc.format_message()
        flag = _flag_given_a_value(exc) if "unexpected extra argument" in message else None
        if flag is not None:
            name, value = flag
            message = (
                f"{name} is a flag and takes no value (got {value!r}): write {name} to turn "
                "it on, leave it out to keep it off"
            )
        raise OneLineUsageError(message, exc.ctx) from None


def _flag_given_a_value(exc: UsageError) -> tuple[str, str] | None:
    """The flag and the word after it, when an extra argument is `true`/`false` after a flag."""
    ctx = exc.ctx
    if ctx is None:
        return None
    argv = getattr(ctx.find_root().command, "argv", None) or []
    flags = {o for p in ctx.command.params if getattr(p, "is_flag", False) for o in p.opts}
    for before, word in itertools.pairwise(argv):
        if before in flags and word.lower() in _FLAG_VALUES:
            return before, word
    return None


@contextlib.contextmanager
def last_resort() -> Iterator[None]:
    """Anything unexpected: one line and exit 1, the traceback in a file the line names."""
    try:
        yield
    except Exception as exc:
        with tempfile.NamedTemporaryFile(
            "w", prefix="mikrobot-crash-", suffix=".txt", delete=False
        ) as f:
            traceback.print_exc(file=f)
        echo(
            f"mikrobot stopped on an unexpected error: {type(exc).__name__}: {exc} "
            f"(the details are in {f.name}; please report them)",
            err=True,
        )
        sys.exit(EXIT_RUNTIME)


def ascii_text(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def echo(text: str = "", err: bool = False) -> None:
    typer.echo(ascii_text(text), err=err)


def fail(message: str, code: int = EXIT_RUNTIME) -> typer.Exit:
    """Say `message` on stderr; the exit to raise. The exit keeps the message (`.message`):
    said while the cockpit holds the screen, it is said again once the screen is gone."""
    echo(message, err=True)
    exit_ = typer.Exit(code)
    exit_.message = message  # type: ignore[attr-defined]
    return exit_


def settings() -> Settings:
    overrides: dict[str, Any] = {}
    if options.db is not None:
        overrides["engine"] = {"db": options.db}
    try:
        return load_settings(
            options.config, overrides=overrides, warn=lambda m: echo(f"warning: {m}", err=True)
        )
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


def check_db(path: Path, *, write: bool) -> None:
    """Exit 2 with one line when `path` cannot be the database (a directory, not SQLite,
    read-only when `write`)."""
    problem = db_path_problem(Path(path), write=write)
    if problem is not None:
        raise fail(f"engine.db: {problem}", EXIT_BAD_INPUT)


@contextlib.contextmanager
def db_errors(path: Path) -> Iterator[None]:
    """SQLite errors as one line naming the file: a busy or locked database is a runtime
    failure (1), any other (a damaged file, one SQLite cannot open or write) bad input (2)."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise fail(f"{path}: {text}; another program holds it, try again") from None
        raise fail(
            f"engine.db: {path} cannot be used as the database ({text}); give the path of a "
            "mikrobot database or of a new file",
            EXIT_BAD_INPUT,
        ) from None


def existing_db(s: Settings, *, write: bool = False) -> Path:
    """The database of a running (or earlier) engine; exit 1 when none, 2 when the path cannot
    be a database (`write`: one the CLI can send commands through)."""
    path = Path(s.engine.db)
    if not path.exists():
        raise fail(
            f"no database at {path}: no engine has run here; start one with "
            "`mikrobot run --headless` or `mikrobot`"
        )
    check_db(path, write=write)
    return path


def reader(s: Settings, *, write: bool = False) -> sqlite3.Connection:
    """A connection to the database of a running (or earlier) engine (`existing_db`)."""
    from mikrobot_tui.store.schema import open_db

    path = existing_db(s, write=write)
    with db_errors(path):
        return open_db(path).conn


def query_only_reader(s: Settings) -> sqlite3.Connection:
    """A connection that cannot write, not even a migration: for reports over a database an
    engine may be writing (`existing_db`)."""
    from mikrobot_tui.store.queries import read_only

    path = existing_db(s)
    with db_errors(path):
        conn = read_only(str(path))
        conn.execute("PRAGMA query_only = ON")
    return conn


def require_engine(conn: sqlite3.Connection, db: Path) -> None:
    from mikrobot_tui.store.queries import engine_status

    status = engine_status(conn, time.time_ns())
    if not status.running:
        raise fail(
            f"no engine is running on {db}; start one with `mikrobot run --headless` "
            "(or `mikrobot` for the cockpit)"
        )


def iso_ns(text: str | None, option: str) -> int | None:
    """An option's ISO-8601 time (UTC when it has no offset) as integer ns; None for None;
    exit 2 naming the option and the form otherwise."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"{option}: {text!r} is not an ISO-8601 time (e.g. 2024-01-31 or 2024-01-31T12:00:00)",
            EXIT_BAD_INPUT,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1_000


class StderrProgress:
    """A rich progress bar on stderr, only when it is a terminal (and not --json)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        self._task = None

    def __enter__(self) -> StderrProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def stage(self, what: str, total: int | None = None) -> None:
        if self._bar is None:
            return
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(what, total=total)

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)


def strategy_params(pairs: list[str]) -> dict[str, float | str]:
    """`--param k=v` pairs (repeatable): a number when v reads as one, else text (a model's
    name); a malformed pair is one line, exit 2."""
    from mikrobot_tui.trading.strategies.params import parse_param

    params: dict[str, float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key.strip() or not value.strip():
                raise ValueError
            params[key.strip()] = parse_param(value)
        except ValueError:
            raise fail(
                f"--param {pair!r}: write name=value, e.g. --param fast=8", EXIT_BAD_INPUT
            ) from None
    return params


def tick_parser():
    """parse_file with the MT5 server clock of config.toml (an MT5 export's times)."""
    from mikrobot_tui.data.importers import parse_file
    from mikrobot_tui.domain.timezones import parse_server_zone

    s = settings()
    try:
        zone = parse_server_zone(s.mt5.server_timezone)
    except ValueError as exc:
        raise fail(f"mt5.server_timezone: {exc}", EXIT_BAD_INPUT) from None

    def parse(path: Path, symbol: str | None):
        return parse_file(path, symbol=symbol, server_zone=zone)

    return parse
