"""The command line: ``python -m actors inspect tasks.sqlite [--status failed] [--json]``.

Lists a journal's tasks (or with ``--schedules`` its schedules), opening the file
read-only, so it works while a manager runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from actors.core.task import TaskStatus
from actors.durability.journal import read_rows, read_text
from actors.errors import JournalError

__all__ = ["main"]

_COLUMNS = ("task_id", "name", "status", "attempts", "last_error", "created", "started", "ended")
_SCHEDULE_COLUMNS = (
    "schedule_id",
    "name",
    "every",
    "cron",
    "timezone",
    "paused",
    "next_run",
    "last_run",
    "fired",
    "skipped",
)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def read_tasks(path: str, status: str | None = None) -> list[dict[str, Any]]:
    """The journal's tasks as plain data, in registration order (``status``: only those).

    Raises:
        JournalError: no such file, or it is not a journal.
    """
    query = (
        "SELECT task_id, key, name, func, status, attempt, retry_count, error_type, "
        "error_message, result_kept, created_at, started_at, completed_at FROM tasks"
    )
    arguments: tuple[str, ...] = ()
    if status is not None:
        query += " WHERE status = ?"
        arguments = (status,)
    rows = read_rows(path, query + " ORDER BY seq", arguments)
    return [
        {
            "task_id": read_text(row["task_id"]),
            "key": read_text(row["key"]),
            "name": read_text(row["name"]),
            "func": read_text(row["func"]),
            "status": row["status"],
            "attempts": row["attempt"],
            "retries": row["retry_count"],
            "last_error": (
                None
                if row["error_type"] is None
                else f"{read_text(row['error_type'])}: {read_text(row['error_message'])}"
            ),
            "result_kept": None if row["result_kept"] is None else bool(row["result_kept"]),
            "created": _iso(row["created_at"]),
            "started": _iso(row["started_at"]),
            "ended": _iso(row["completed_at"]),
        }
        for row in rows
    ]


def read_schedules(path: str) -> list[dict[str, Any]]:
    """The journal's schedules as plain data, oldest first (none in a journal older than
    version 3).

    Raises:
        JournalError: no such file, or it is not a journal.
    """
    if not read_rows(
        path, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schedules'"
    ):
        return []
    rows = read_rows(
        path,
        "SELECT schedule_id, name, func, every, cron, timezone, start, end, misfire, "
        "max_instances, paused, next_run, last_run, fired, skipped FROM schedules "
        "ORDER BY created_at",
    )
    return [
        {
            "schedule_id": read_text(row["schedule_id"]),
            "name": read_text(row["name"]),
            "func": read_text(row["func"]),
            "every": row["every"],
            "cron": read_text(row["cron"]),
            "timezone": read_text(row["timezone"]),
            "start": _iso(row["start"]),
            "end": _iso(row["end"]),
            "misfire": row["misfire"],
            "max_instances": row["max_instances"],
            "paused": bool(row["paused"]),
            "next_run": None if row["paused"] else _iso(row["next_run"]),
            "last_run": _iso(row["last_run"]),
            "fired": row["fired"],
            "skipped": row["skipped"],
        }
        for row in rows
    ]


def _cell(value: object) -> str:
    """A table's cell: control characters (a newline, an ANSI escape, a lone surrogate)
    shown escaped, as ``repr`` shows them."""
    text = "-" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _plain_table(
    tasks: list[dict[str, Any]], out: TextIO, columns: tuple[str, ...] = _COLUMNS
) -> None:
    rows = [[_cell(task[column]) for column in columns] for task in tasks]
    widths = [
        max([len(column)] + [len(row[i]) for row in rows]) for i, column in enumerate(columns)
    ]
    if "last_error" in columns:  # a long error is cut, not the table made unreadable
        at = columns.index("last_error")
        widths[at] = min(widths[at], 60)
    for row in [list(columns), *rows]:
        cells = [
            (cell if len(cell) <= width else cell[: width - 3] + "...").ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")


_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
    "PENDING": "blue",
    "WAITING": "magenta",
}


def _rich_table(tasks: list[dict[str, Any]], path: str, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text  # plain text, never parsed as markup

    table = Table(title=Text(f"{_cell(path)}: {len(tasks)} tasks"))
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", max_width=60 if column == "last_error" else None)
    for task in tasks:
        cells = [Text(_cell(task[column])) for column in _COLUMNS]
        cells[2].stylize(_STYLE.get(task["status"], "white"))
        table.add_row(*cells)
    console.print(table)


def _inspect(options: argparse.Namespace, out: TextIO) -> int:
    if options.schedules:
        schedules = read_schedules(options.journal)
        if options.json:
            json.dump(schedules, out, indent=2)
            out.write("\n")
        else:
            _plain_table(schedules, out, _SCHEDULE_COLUMNS)
        return 0
    status = None if options.status is None else options.status.upper()
    tasks = read_tasks(options.journal, status)
    if options.json:
        json.dump(tasks, out, indent=2)
        out.write("\n")
        return 0
    if out.isatty():
        try:
            from rich.console import Console
        except ImportError:  # rich is an extra: plain text without it
            pass
        else:
            _rich_table(tasks, options.journal, Console(file=out))
            return 0
    _plain_table(tasks, out)
    count = len(read_schedules(options.journal))
    if count:
        out.write(f"{count} schedule{'s' * (count != 1)} (--schedules lists them)\n")
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; the exit status (2 for a file that is not a journal)."""
    parser = argparse.ArgumentParser(prog="python -m actors")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect", help="list a journal's tasks (read-only: safe while a manager runs)"
    )
    inspect.add_argument("journal", help="the journal's path (an SQLite file)")
    inspect.add_argument(
        "--status",
        choices=[s.name.lower() for s in TaskStatus],
        type=str.lower,
        help="only the tasks with this status",
    )
    inspect.add_argument("--json", action="store_true", help="print a JSON array")
    inspect.add_argument(
        "--schedules", action="store_true", help="list the schedules instead of the tasks"
    )
    options = parser.parse_args(argv)
    stream = sys.stdout if out is None else out
    try:
        status = _inspect(options, stream)
        stream.flush()  # here, not at exit: a closed pipe is told below
        return status
    except JournalError as error:
        print(f"python -m actors inspect: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (``| head``): stop quietly. Python flushes stdout again at
        # exit, so it goes to /dev/null from now on (as the Python docs advise).
        if stream is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 1
