"""`mikrobot db backup | check | retain`: keeping the database (store/maintenance.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mikrobot_tui.cli.common import EXIT_BAD_INPUT, EXIT_RUNTIME, db_errors, echo, fail, reader
from mikrobot_tui.cli.common import settings as load

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON object on stdout")]
MIB = 1024 * 1024


def backup(
    path: Annotated[Path, typer.Argument(help="The new file to write the copy to")],
    as_json: JsonFlag = False,
) -> None:
    """Copy the database to PATH while an engine may be writing it (SQLite's online backup)."""
    from mikrobot_tui.store.maintenance import backup as copy

    s = load()
    db = Path(s.engine.db)
    reader(s).close()  # exit 1 without a database, 2 when it is not one
    bar = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"backing up {db.name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

    else:
        progress = None  # type: ignore[assignment]
    try:
        with db_errors(db):
            result = copy(db, path, progress)
    except (FileExistsError, FileNotFoundError) as exc:
        raise fail(f"backup: {exc}", EXIT_BAD_INPUT) from None
    except OSError as exc:
        raise fail(f"backup: could not write {path}: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        doc = {"file": str(result.path), "bytes": result.bytes, "seconds": result.seconds}
        echo(json.dumps(doc))
        return
    echo(f"backed up {db} to {result.path}: {result.bytes / MIB:.1f} MiB in {result.seconds:.1f} s")


def check(
    quick: Annotated[
        bool, typer.Option("--quick", help="SQLite's quick check; tick blocks not decoded")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check the database: SQLite's integrity, the event log's numbering, every tick block.

    Exit 0 when it is sound, 1 when something is wrong (each problem is a sentence).
    """
    from mikrobot_tui.store.maintenance import check as examine

    s = load()
    conn = reader(s)
    with db_errors(Path(s.engine.db)):
        report = examine(conn, full=not quick)
    if as_json:
        echo(json.dumps({"ok": report.ok, "problems": report.problems, "facts": report.facts}))
    else:
        for fact in report.facts:
            echo(fact)
        for problem in report.problems:
            echo(f"problem: {problem}")
        echo(f"{s.engine.db}: " + ("sound" if report.ok else f"{len(report.problems)} problem(s)"))
    if not report.ok:
        raise typer.Exit(EXIT_RUNTIME)


def retain(
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", min=0, help="Days; default store.retain_days"),
    ] = None,
    drop: Annotated[
        bool, typer.Option("--drop", help="Delete old ticks (bars stay); default store.retain_mode")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compact old ticks (merge and recompress their blocks) or drop them, keeping the bars."""
    from mikrobot_tui.store.maintenance import retain as keep

    s = load()
    days = s.store.retain_days if older_than is None else older_than
    drop = drop or s.store.retain_mode == "drop"
    conn = reader(s, write=True)
    cut = time.time_ns() - int(days * 86_400 * 1_000_000_000)
    with db_errors(Path(s.engine.db)):
        r = keep(conn, cut, drop=drop)
    saved = r.bytes_before - r.bytes_after
    if as_json:
        doc = {
            "older_than_days": days,
            "mode": "drop" if drop else "compact",
            "ticks": r.ticks,
            "blocks_before": r.blocks_before,
            "blocks_after": r.blocks_after,
            "bytes_before": r.bytes_before,
            "bytes_after": r.bytes_after,
        }
        echo(json.dumps(doc))
        return
    if not r.blocks_before:
        echo(f"no ticks older than {days:g} days")
        return
    what = "dropped" if drop else "compacted"
    share = saved / r.bytes_before if r.bytes_before else 0.0
    echo(
        f"{what} {r.ticks:,} ticks older than {days:g} days: {r.blocks_before:,} blocks "
        f"({r.bytes_before / MIB:.2f} MiB) -> {r.blocks_after:,} ({r.bytes_after / MIB:.2f} "
        f"MiB), {share:.0%} smaller; SQLite reuses the freed pages (VACUUM shrinks the file)"
    )
