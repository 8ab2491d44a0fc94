"""What the dashboard shows, as plain data: from a running manager or from a journal file.

Both views answer the same questions (a page of tasks, one task, the graph around a task,
the load); the live one also acts (cancel, retry, pause a schedule). They read through
the manager's API and the store's read-only records: nothing here changes a task except
the actions, and those go through the manager as a program's call would.
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
import sqlite3
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from actors.core.lifecycle import State
from actors.core.task import Task, TaskPriority, TaskStatus
from actors.durability.journal import open_read_only, read_rows, read_text
from actors.errors import StandInError, TaskError, TaskNotFoundError
from supervision import Supervisor

if TYPE_CHECKING:
    from actors.core.schedules import ScheduleInfo
    from actors.manager import TaskManager

__all__ = ["SORTS", "JournalView", "LiveView", "Page", "Row", "View", "neighbourhood"]

SORTS = ("created", "-created", "name", "-name", "status", "-status")
"""The orders a task table can be sorted in (``-`` for descending)."""

_REPR = reprlib.Repr()
_REPR.maxstring = 2_000
_REPR.maxother = 2_000
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 50


def shown(value: object) -> str:
    """A value's repr for the page: cut where it is long, never failing."""
    try:
        return _REPR.repr(value)
    except Exception as error:  # noqa: BLE001 - a broken __repr__ is shown, not raised
        return f"<unprintable {type(value).__name__}: {error!r}>"


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    """How many tasks match the filter (all pages)."""
    tasks: list[dict[str, Any]]


class Row(Protocol):
    """One task as the table and the graph read it: a live record (a Task) or a
    journal's row."""

    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> TaskStatus: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...


@dataclass(slots=True)
class JournalRow:
    task_id: str
    name: str
    status: TaskStatus
    tags: tuple[str, ...]
    dependencies: tuple[str, ...]
    row: sqlite3.Row


class View(Protocol):
    """What a dashboard reads; ``actions`` False for a view that only reads."""

    actions: bool

    def rows(self) -> Sequence[Row]: ...

    def page(
        self,
        *,
        status: str | None,
        name: str | None,
        tag: str | None,
        sort: str,
        offset: int,
        limit: int,
    ) -> Page: ...

    def task(self, task_id: str) -> dict[str, Any] | None: ...

    def metrics(self) -> dict[str, Any]: ...

    def supervision(self) -> list[dict[str, Any]]: ...

    def schedules(self) -> list[dict[str, Any]] | None: ...

    def ended(self) -> bool: ...


def _iso(moment: datetime | float | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.isoformat()
    return datetime.fromtimestamp(moment, UTC).isoformat()


def neighbourhood(rows: Sequence[Row], task_id: str | None, depth: int, most: int) -> list[Row]:
    """The tasks within ``depth`` dependency steps of ``task_id`` (either way), at most
    ``most`` of them, nearest first; without a task, the newest ``most`` tasks."""
    if task_id is None:
        return list(rows[-most:])
    by_id = {r.task_id: r for r in rows}
    if task_id not in by_id:
        return []
    dependents: dict[str, list[str]] = {}
    for r in rows:
        for dependency in r.dependencies:
            dependents.setdefault(dependency, []).append(r.task_id)
    seen = {task_id}
    frontier = [task_id]
    for _ in range(depth):
        following = []
        for current in frontier:
            for other in (*by_id[current].dependencies, *dependents.get(current, ())):
                if other in by_id and other not in seen and len(seen) < most:
                    seen.add(other)
                    following.append(other)
        frontier = following
    order = {r.task_id: n for n, r in enumerate(rows)}
    return sorted((by_id[t] for t in seen), key=lambda r: order[r.task_id])


def _traceback_of(error: TaskError | None) -> str:
    if error is None:
        return ""
    original = getattr(error, "original_error", None)
    cause = original if isinstance(original, BaseException) else error
    if isinstance(cause, StandInError):
        return cause.traceback_text
    return "".join(traceback.format_exception(cause))


def _link(task_id: str, row: Row | None) -> dict[str, Any]:
    """A neighbour of a task, as its detail page links to it (None: not known any more)."""
    if row is None:
        return {"task_id": task_id, "name": None, "status": None}
    return {"task_id": task_id, "name": row.name, "status": row.status.name}


def _live_plain(task: Task) -> dict[str, Any]:
    error = task.error
    return {
        "task_id": task.task_id,
        "name": task.name,
        "status": task.status.name,
        "tags": list(task.tags),
        "priority": task.priority.name,
        "executor": task.executor,
        "attempt": task.attempt,
        "progress": task.progress,
        "progress_message": task.progress_message,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "created": _iso(task.created_at),
        "started": _iso(task.started_at),
        "ended": _iso(task.completed_at),
    }


class LiveView:
    """A running manager's tasks, load, supervision tree and schedules; it acts too."""

    def __init__(self, tm: TaskManager, *, actions: bool) -> None:
        self.tm = tm
        self.actions = actions

    def rows(self) -> list[Task]:
        return self.tm.system.store.records()

    def page(
        self,
        *,
        status: str | None,
        name: str | None,
        tag: str | None,
        sort: str,
        offset: int,
        limit: int,
    ) -> Page:
        """The page of tasks that match (status exact, name a substring, tag exact)."""
        kept = self.rows()
        if status is not None:
            wanted = TaskStatus[status.upper()]
            kept = [r for r in kept if r.status is wanted]
        if name:
            needle = name.lower()
            kept = [r for r in kept if needle in r.name.lower()]
        if tag is not None:
            kept = [r for r in kept if tag in r.tags]
        key = sort.lstrip("-")
        if key == "name":
            kept = sorted(kept, key=lambda r: r.name)
        elif key == "status":
            kept = sorted(kept, key=lambda r: r.status.name)
        # "created": the rows come in registration order already
        if sort.startswith("-"):
            kept = kept[::-1]
        return Page(len(kept), [_live_plain(r) for r in kept[offset : offset + limit]])

    def task(self, task_id: str) -> dict[str, Any] | None:
        task = self.tm.get_task(task_id)
        if task is None:
            return None
        data = _live_plain(task)
        store = self.tm.system.store
        dependents = [t.task_id for t in store.records() if task_id in t.dependencies]
        data.update(
            description=task.description,
            func=getattr(task.func, "__qualname__", shown(task.func)),
            args=[shown(a) for a in task.args],
            kwargs={k: shown(v) for k, v in task.kwargs.items()},
            metadata={k: shown(v) for k, v in task.metadata.items()},
            max_retries=task.max_retries,
            retry_count=task.retry_count,
            timeout=task.timeout,
            result=shown(task.result) if task.status is TaskStatus.COMPLETED else None,
            traceback=_traceback_of(task.error),
            dependencies=[_link(d, store.task(d)) for d in task.dependencies],
            dependents=[_link(d, store.task(d)) for d in dependents],
        )
        return data

    def metrics(self) -> dict[str, Any]:
        return self.tm.get_metrics()

    def ended(self) -> bool:
        """The manager stopped: its pages' streams end (so a server can stop too)."""
        return self.tm.state in (State.STOPPED, State.FAILED)

    def supervision(self) -> list[dict[str, Any]]:
        root = self.tm.system.supervisor
        return [] if root is None else _children(root)

    def schedules(self) -> list[dict[str, Any]]:
        return [_plain(info) for info in self.tm.schedules()]

    # -- actions ------------------------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        return self.tm.cancel_task_sync(task_id)

    def retry(self, task_id: str) -> str:
        """A new task that runs the failed (or cancelled) one again, linked to it by its
        metadata (``retry_of``): a finished task's outcome never changes."""
        task = self.tm.get_task(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id!r}", task_id)
        if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise ValueError(f"task {task_id} is not FAILED or CANCELLED")
        return str(
            self.tm.register_task(
                task.name,
                task.func,
                *task.args,
                kwargs=task.kwargs,
                priority=task.priority,
                dependencies=[d for d in task.dependencies if self.tm.get_task_status(d)],
                max_retries=task.max_retries,
                retry_delay=task.retry_delay,
                timeout=task.timeout,
                description=task.description,
                tags=task.tags,
                metadata={**task.metadata, "retry_of": task_id},
                executor_type=task.executor,
            )
        )

    def schedule_action(self, schedule_id: str, action: str) -> bool:
        """Pause or resume a schedule; False if there is no such schedule."""
        pause_or_resume = self.tm.pause_schedule if action == "pause" else self.tm.resume_schedule
        return pause_or_resume(schedule_id)


def _children(supervisor: pykka.ActorRef[Any]) -> list[dict[str, Any]]:
    """A supervisor's children, and theirs, each with its actor's urn and how often its
    supervisor restarted it."""
    try:
        children = supervisor.proxy().which_children().get(timeout=5)
    except (pykka.ActorDeadError, pykka.Timeout):
        return []
    found = []
    for child in children:
        ref = child.ref
        kind = "worker"
        below: list[dict[str, Any]] = []
        if ref is not None and issubclass(ref.actor_class, Supervisor):
            kind = "supervisor"
            below = _children(ref)
        found.append(
            {
                "id": child.id,
                "alive": child.alive,
                "kind": kind,
                "actor": None if ref is None else ref.actor_urn,
                "restarts": child.restarts,
                "children": below,
            }
        )
    return found


def _plain(info: ScheduleInfo) -> dict[str, Any]:
    """A schedule's record as JSON-ready data (its fields are plain values or times)."""
    return {
        field.name: value.isoformat() if isinstance(value, datetime) else value
        for field in dataclasses.fields(info)
        for value in [getattr(info, field.name)]
    }


class JournalView:
    """A journal file's tasks, read-only (the file opened read-only, as ``inspect`` does)."""

    actions = False

    def __init__(self, path: str) -> None:
        self.path = path
        open_read_only(path).close()  # a missing file or not a journal: JournalError now

    _COLUMNS = (
        "task_id, name, func, status, priority, dependencies, tags, executor, attempt, "
        "retry_count, max_retries, timeout, description, error_type, error_message, "
        "result_kept, created_at, started_at, completed_at"
    )

    def _query(
        self, where: str = "", arguments: tuple[Any, ...] = (), tail: str = " ORDER BY seq"
    ) -> list[sqlite3.Row]:
        return self._read(f"SELECT {self._COLUMNS} FROM tasks{where}{tail}", arguments)

    def _read(self, query: str, arguments: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return read_rows(self.path, query, arguments)

    def page(
        self,
        *,
        status: str | None,
        name: str | None,
        tag: str | None,
        sort: str,
        offset: int,
        limit: int,
    ) -> Page:
        """The page, filtered, sorted and cut by SQLite (a journal of 100,000 tasks is
        not read whole for fifty rows)."""
        where, arguments = [], []
        if status is not None:
            where.append("status = ?")
            arguments.append(status.upper())
        if name:
            where.append("instr(lower(name), ?) > 0")
            arguments.append(name.lower())
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE value = ?)")
            arguments.append(tag)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = {"created": "seq", "name": "name, seq", "status": "status, seq"}[sort.lstrip("-")]
        if sort.startswith("-"):
            order = ", ".join(f"{column} DESC" for column in order.split(", "))
        total = self._read(f"SELECT COUNT(*) FROM tasks{clause}", tuple(arguments))[0][0]
        rows = self._query(
            clause, (*arguments, limit, offset), f" ORDER BY {order} LIMIT ? OFFSET ?"
        )
        return Page(total, [self.plain(self._row(row)) for row in rows])

    def rows(self) -> list[JournalRow]:
        return [self._row(row) for row in self._query()]

    @staticmethod
    def _row(row: sqlite3.Row) -> JournalRow:
        return JournalRow(
            read_text(row["task_id"]),
            read_text(row["name"]),
            TaskStatus[row["status"]],
            tuple(json.loads(read_text(row["tags"]))),
            tuple(json.loads(read_text(row["dependencies"]))),
            row,
        )

    def plain(self, journal_row: JournalRow) -> dict[str, Any]:
        row = journal_row.row
        status = journal_row.status
        error = (
            None
            if row["error_type"] is None
            else f"{read_text(row['error_type'])}: {read_text(row['error_message'])}"
        )
        return {
            "task_id": journal_row.task_id,
            "name": journal_row.name,
            "status": status.name,
            "tags": list(journal_row.tags),
            "priority": TaskPriority(row["priority"]).name,
            "executor": read_text(row["executor"]),
            "attempt": row["attempt"],
            "progress": 1.0 if status is TaskStatus.COMPLETED else 0.0,
            "progress_message": "",
            "error": error,
            "created": _iso(row["created_at"]),
            "started": _iso(row["started_at"]),
            "ended": _iso(row["completed_at"]),
        }

    def task(self, task_id: str) -> dict[str, Any] | None:
        found = self._query(" WHERE task_id = ?", (task_id,))
        if not found:
            return None
        this = self._row(found[-1])
        row = this.row
        data = self.plain(this)
        dependencies = this.dependencies
        known = {}
        if dependencies:
            marks = ",".join("?" * len(dependencies))
            found = self._query(f" WHERE task_id IN ({marks})", tuple(dependencies))
            known = {r.task_id: r for r in map(self._row, found)}
        dependents = map(
            self._row,
            self._query(
                " WHERE EXISTS (SELECT 1 FROM json_each(tasks.dependencies) WHERE value = ?)",
                (task_id,),
            ),
        )

        data.update(
            description=read_text(row["description"]),
            func=read_text(row["func"]),
            args=None,  # pickled in the journal: not unpickled by a viewer
            kwargs=None,
            metadata=None,
            max_retries=row["max_retries"],
            retry_count=row["retry_count"],
            timeout=row["timeout"],
            result=None,
            traceback="",
            dependencies=[_link(d, known.get(d)) for d in dependencies],
            dependents=[_link(r.task_id, r) for r in dependents],
        )
        return data

    def metrics(self) -> dict[str, Any]:
        counts = {s.name: 0 for s in TaskStatus}
        for status, count in self._read("SELECT status, COUNT(*) FROM tasks GROUP BY status"):
            counts[status] = count
        return {
            "is_running": False,
            "journal": self.path,
            "total_tasks": sum(counts.values()),
            **{f"{s.lower()}_tasks": n for s, n in counts.items()},
            "executors": {},
        }

    def supervision(self) -> list[dict[str, Any]]:
        return []

    def schedules(self) -> list[dict[str, Any]] | None:
        return None

    def ended(self) -> bool:
        return False
