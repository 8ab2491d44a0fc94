"""The command line: ``python -m actors inspect tasks.sqlite [--status failed] [--json]``.

``inspect`` lists the tasks of a journal: id, name, status, attempts, last error, times.
It opens the file read-only, so it works while a task manager runs on it. On a terminal
with ``rich`` installed (``pip install 'actors-taskmanager[examples]'``) the table is
rich's; otherwise it is plain text, one line per task. ``--json`` prints a JSON array.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from actors._journal import open_read_only
from actors._task import TaskStatus
from actors.errors import JournalError

__all__ = ["main"]

_COLUMNS = ("task_id", "name", "status", "attempts", "last_error", "created", "started", "ended")


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def read_tasks(path: str, status: str | None = None) -> list[dict[str, Any]]:
    """The journal's tasks as plain data, in registration order (``status``: only those).

    Raises:
        JournalError: no such file, or it is not a journal.
    """
    db = open_read_only(path)
    try:
        db.row_factory = sqlite3.Row
        query = (
            "SELECT task_id, key, name, func, status, attempt, retry_count, error_type, "
            "error_message, result_kept, created_at, started_at, completed_at FROM tasks"
        )
        arguments: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            arguments = (status,)
        rows = db.execute(query + " ORDER BY seq", arguments).fetchall()
    except sqlite3.Error as error:
        raise JournalError(f"cannot read journal {path}: {error}") from None
    finally:
        db.close()
    return [
        {
            "task_id": row["task_id"],
            "key": row["key"],
            "name": row["name"],
            "func": row["func"],
            "status": row["status"],
            "attempts": row["attempt"],
            "retries": row["retry_count"],
            "last_error": (
                None
                if row["error_type"] is None
                else f"{row['error_type']}: {row['error_message']}"
            ),
            "result_kept": None if row["result_kept"] is None else bool(row["result_kept"]),
            "created": _iso(row["created_at"]),
            "started": _iso(row["started_at"]),
            "ended": _iso(row["completed_at"]),
        }
        for row in rows
    ]


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _plain_table(tasks: list[dict[str, Any]], out: TextIO) -> None:
    rows = [[_cell(task[column]) for column in _COLUMNS] for task in tasks]
    widths = [
        max([len(column)] + [len(row[i]) for row in rows]) for i, column in enumerate(_COLUMNS)
    ]
    widths[4] = min(widths[4], 60)  # a long error is cut, not the table made unreadable
    for row in [list(_COLUMNS), *rows]:
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

    table = Table(title=f"{path}: {len(tasks)} tasks")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", max_width=60 if column == "last_error" else None)
    for task in tasks:
        cells = [_cell(task[column]) for column in _COLUMNS]
        cells[2] = f"[{_STYLE.get(task['status'], 'white')}]{cells[2]}[/]"
        table.add_row(*cells)
    console.print(table)


def _inspect(options: argparse.Namespace, out: TextIO) -> int:
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
    options = parser.parse_args(argv)
    try:
        return _inspect(options, sys.stdout if out is None else out)
    except JournalError as error:
        print(f"python -m actors inspect: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
