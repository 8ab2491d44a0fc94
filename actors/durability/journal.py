"""The journal: the task table kept in an SQLite file, so that a crash loses no task.

One writer owns the connection and commits what the store queued, a burst per
transaction; a registration waits for the commit that holds its row. The writer never
takes the store's lock. A file that is not ours, is damaged, or is held by another live
process is refused, never written.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import heapq
import itertools
import json
import os
import pathlib
import pickle
import socket
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors import errors
from actors.core import tracing as _tracing
from actors.core.registration import func_name, is_coroutine_function
from actors.core.task import TERMINAL, Task, TaskPriority, TaskStatus, frozen_mapping
from actors.errors import JournalError, TaskError, TaskExecutionError
from actors.runtime.sync import Burst
from supervision._log import get_logger

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "APPLICATION_ID",
    "JOURNAL_SYNC",
    "SCHEMA_VERSION",
    "Journal",
    "Restored",
    "open_read_only",
    "read_text",
]

_log = get_logger("actors")

APPLICATION_ID = 0x41435453  # "ACTS": ``PRAGMA application_id`` of every journal
SCHEMA_VERSION = 3  # ``PRAGMA user_version``; older ones are migrated when opened (_MIGRATE)
JOURNAL_SYNC = {"normal": "NORMAL", "full": "FULL"}
"""``journal_sync`` -> ``PRAGMA synchronous``. In WAL mode NORMAL survives a crash of the
process (a commit is in the OS's hands when it returns); FULL also survives a power loss
(every commit is fsynced)."""

_SQLITE_HEADER = b"SQLite format 3\x00"
_COMPLETED = TaskStatus.COMPLETED  # (read per change: a global, not an enum lookup)
_PENDING = TaskStatus.PENDING
_PICKLE = pickle.HIGHEST_PROTOCOL

_SCHEDULES_TABLE = """
CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    func TEXT NOT NULL,
    payload BLOB NOT NULL,
    every REAL,
    cron TEXT,
    timezone TEXT,
    start REAL,
    end REAL,
    misfire TEXT NOT NULL,
    max_instances INTEGER NOT NULL,
    paused INTEGER NOT NULL,
    next_run REAL,
    last_run REAL,
    fired INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""  # in the schema and in the migration from version 2

_SCHEMA = f"""
BEGIN;
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    key TEXT,
    name TEXT NOT NULL,
    func TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    dependencies TEXT NOT NULL,
    max_retries INTEGER NOT NULL,
    retry_delay REAL NOT NULL,
    timeout REAL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    executor TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0,
    error_type TEXT,
    error_message TEXT,
    error BLOB,
    result BLOB,
    result_kept INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    trace TEXT,
    retry_at REAL
);
CREATE UNIQUE INDEX tasks_key ON tasks (key) WHERE key IS NOT NULL;
CREATE TABLE keys (key TEXT PRIMARY KEY, task_id TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE result_parts (
    seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, part)
) WITHOUT ROWID;
{_SCHEDULES_TABLE}
CREATE TABLE holder (pid INTEGER NOT NULL, host TEXT NOT NULL, since REAL NOT NULL);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
# ``trace``: the registering span's context, W3C headers as JSON (NULL: none).
# ``keys``: every idempotency key with its first task, kept after that task's row is
# pruned (``keep_finished``), until ``forget`` drops the task: a key lasts as long as the
# journal does.
# ``retry_at``: when a task waiting for its retry may start again (a timestamp; NULL: no
# retry is pending), so that a restart keeps the retry's delay.
# ``schedules``: each schedule (``TaskManager.schedule``), its payload the pickled
# (func, args, kwargs, task options); times are timestamps.
# ``result_parts``: a pickled result larger than _PART_SIZE, in parts, each written by a
# turn of its own (a registration waits for one part at most); its task's row then says
# ``result_kept = 2`` (parts) and ``result`` is NULL.

_MIGRATE = {  # version -> the script that makes it the next one (in one transaction)
    1: """
BEGIN;
ALTER TABLE tasks ADD COLUMN trace TEXT;
CREATE TABLE keys (key TEXT PRIMARY KEY, task_id TEXT NOT NULL, seq INTEGER NOT NULL);
INSERT OR IGNORE INTO keys SELECT key, task_id, seq FROM tasks WHERE key IS NOT NULL;
CREATE TABLE result_parts (
    seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, part)
) WITHOUT ROWID;
PRAGMA user_version = 2;
COMMIT;
""",
    2: f"""
BEGIN;
ALTER TABLE tasks ADD COLUMN retry_at REAL;
{_SCHEDULES_TABLE}
PRAGMA user_version = 3;
COMMIT;
""",
}

# A row is found by its ``seq`` (the rowid: the store's registration number of the task),
# never by ``task_id``: an index of random ids would cost each commit several pages.
_INSERT_SQL = (
    "INSERT INTO tasks (seq, task_id, key, name, func, payload, priority, dependencies, "
    "max_retries, retry_delay, timeout, description, tags, executor, status, attempt, "
    "retry_count, created_at, trace)"
)
_KEYS_SQL = "INSERT OR REPLACE INTO keys (key, task_id, seq) VALUES (?, ?, ?)"
_UNKEY_SQL = "DELETE FROM keys WHERE key = ?"
# The kinds of change, first item of each queued tuple.
_INSERT = 0
_STATE = 1
_DROP = 2
_RESULT = 3  # a COMPLETED state whose result was pickled outside the turns (see _defer)
_UNKEY = 4  # a key given up (its task forgotten by the application)
_SCHEDULE = 5  # a schedule added or changed (its whole row)
_UNSCHEDULE = 6  # a schedule removed

_STATE_COLUMNS = (
    "seq, status, attempt, retry_count, error_type, error_message, error, result, "
    "result_kept, started_at, completed_at, retry_at"
)
_STATE_SET = ", ".join(f"{column} = changed.{column}" for column in _STATE_COLUMNS.split(", ")[1:])
_ROW_OF = {_INSERT: 19, _STATE: 12, _DROP: 1, _RESULT: 12, _UNKEY: 1}  # parameters per row

# Many rows per statement: the sqlite3 module lets the GIL go around every step of a
# statement, and a thread that wants it back waits behind the busy ones. One
# multi-row statement per burst, not one step per row, keeps the journal's cost per
# task down.
_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)


@functools.cache
def _sql(kind: int, rows: int) -> str:
    """The statement that writes ``rows`` changes of ``kind`` at once."""
    width = _ROW_OF[kind]
    values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
    if kind == _INSERT:
        return f"{_INSERT_SQL} VALUES {values}"
    if kind == _STATE:
        return (
            f"WITH changed({_STATE_COLUMNS}) AS (VALUES {values}) "
            f"UPDATE tasks SET {_STATE_SET} FROM changed WHERE tasks.seq = changed.seq"
        )
    return f"DELETE FROM tasks WHERE seq IN ({', '.join('?' * rows)})"


_STATE_ONE_SQL = (  # without UPDATE ... FROM (SQLite < 3.33): one row at a time
    "UPDATE tasks SET status = ?2, attempt = ?3, retry_count = ?4, error_type = ?5, "
    "error_message = ?6, error = ?7, result = ?8, result_kept = ?9, started_at = ?10, "
    "completed_at = ?11, retry_at = ?12 WHERE seq = ?1"
)
_SCHEDULE_COLUMNS = (
    "schedule_id, name, func, payload, every, cron, timezone, start, end, misfire, "
    "max_instances, paused, next_run, last_run, fired, skipped, created_at"
)
_SCHEDULE_SQL = (
    f"INSERT OR REPLACE INTO schedules ({_SCHEDULE_COLUMNS}) VALUES "
    f"({', '.join('?' * len(_SCHEDULE_COLUMNS.split(', ')))})"
)
_UNSCHEDULE_SQL = "DELETE FROM schedules WHERE schedule_id = ?"


def _statements(
    changes: list[tuple[Any, ...]], parted: set[int] | None = None
) -> list[tuple[str, Any]]:
    """The statements that write ``changes`` in order: each run of one kind of change
    as few multi-row statements as the parameter limit allows. ``parted``: the tasks
    whose result is in parts (a drop deletes them too)."""
    statements: list[tuple[str, Any]] = []
    start = 0
    count = len(changes)
    for end in range(1, count + 1):
        if end < count and changes[end][0] == changes[start][0]:
            continue
        kind = changes[start][0]
        run = changes[start:end]
        start = end
        if kind == _INSERT:
            rows = [_insert_row(change) for change in run]
            # (the key's own table: it outlives the row, see _SCHEMA)
            keys = [(change[3], change[2].task_id, change[1]) for change in run if change[3]]
            if keys:
                statements.extend((_KEYS_SQL, key) for key in keys)
        elif kind == _UNKEY:
            statements += [(_UNKEY_SQL, (change[1],)) for change in run]
            continue
        elif kind == _SCHEDULE:  # few and rare: one statement each
            statements += [(_SCHEDULE_SQL, change[1]) for change in run]
            continue
        elif kind == _UNSCHEDULE:
            statements += [(_UNSCHEDULE_SQL, (change[1],)) for change in run]
            continue
        elif kind == _STATE:
            # Only a task's last state in the run matters: a task that started and
            # finished within one burst is one row.
            rows = [_state_row(change) for change in {c[1]: c for c in run}.values()]
            if not _UPDATE_FROM:
                statements += [(_STATE_ONE_SQL, row) for row in rows]
                continue
        elif kind == _RESULT:  # large values: one plain UPDATE each
            statements += [(_STATE_ONE_SQL, _state_row(change)) for change in run]
            continue
        else:
            rows = [(change[1],) for change in run]
            if parted:
                statements += [
                    ("DELETE FROM result_parts WHERE seq = ?", (change[1],))
                    for change in run
                    if change[1] in parted
                ]
        per = max(1, min(500, _MAX_VARIABLES // _ROW_OF[kind]))
        for first in range(0, len(rows), per):
            chunk = rows[first : first + per]
            statements.append((_sql(kind, len(chunk)), [v for row in chunk for v in row]))
    return statements


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(timestamp: float | None) -> datetime | None:
    if timestamp is not None and type(timestamp) not in (int, float):
        raise TypeError(f"not a time but {type(timestamp).__name__}")
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _dump(value: object, what: str = "value") -> bytes | None:
    """``value`` pickled, or None if it does not pickle.

    Whatever pickling raises (a ``__reduce__`` may raise anything, ``SystemExit`` too)
    means only that it is not kept: the writer, which runs this, must survive it. Only
    ``KeyboardInterrupt`` goes on (the user's Ctrl-C on the main thread).
    """
    try:
        return pickle.dumps(value, _PICKLE)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - does not pickle: not kept (docs/guides/journal.md says so)
        return None
    except BaseException as error:  # noqa: BLE001 - SystemExit & co from a __reduce__
        _log.warning("journal.not_kept", what=what, error=repr(error))
        return None


# Results that pickle at once on any turn; anything else is pickled by the writer's own
# thread outside the turns (see Journal._defer).
_CHEAP_RESULTS = (type(None), bool, int, float)
_CHEAP_SIZE = 4096


def _pickles_at_once(result: object) -> bool:
    kind = type(result)
    if kind in _CHEAP_RESULTS:
        return True
    return (kind is str or kind is bytes) and len(result) <= _CHEAP_SIZE  # type: ignore[arg-type]


class _Pickled:
    """A result pickled already (or None: it does not pickle); ``parts``: it is in
    ``result_parts`` already."""

    __slots__ = ("blob", "parts")

    def __init__(self, blob: bytes | None, parts: bool = False) -> None:
        self.blob = blob
        self.parts = parts


_PART_SIZE = 1 << 20  # a larger pickled result is written in parts of this size
_PARTS_KEPT = 2  # ``result_kept`` of a result in ``result_parts``


def _storable(value: object) -> object:
    """``value`` as SQLite takes it: text that is not valid UTF-8 (lone surrogates, as
    ``os.fsdecode`` makes of a file name's undecodable bytes) is kept as its
    ``surrogatepass`` UTF-8 bytes (a BLOB; :func:`read_text` reads it back, losslessly)."""
    if type(value) is str and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    return value


def read_text(value: object) -> Any:
    """A text column read back: see :func:`_storable`."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    return value


# Constraints a row's own values break (a NaN, which SQLite stores as NULL, in a NOT
# NULL column...); a trigger's refusal, as another program may add, is the file's.
_ROW_CONSTRAINTS = frozenset(
    {
        "SQLITE_CONSTRAINT_NOTNULL",
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_CHECK",
        "SQLITE_CONSTRAINT_DATATYPE",
    }
)


def _row_error(error: BaseException) -> bool:
    """Whether ``error`` (from a write) is one row's value that SQLite cannot take (an
    integer past 64 bits, text it cannot encode, a value too big, a NaN where a number
    must be), not the file's fault."""
    if isinstance(error, sqlite3.DataError):
        return True
    if isinstance(error, sqlite3.IntegrityError):
        return getattr(error, "sqlite_errorname", None) in _ROW_CONSTRAINTS
    return isinstance(error, Exception) and not isinstance(error, sqlite3.DatabaseError)


def _never() -> bool:
    return False


def _not_restored(*_args: object, **_kwargs: object) -> None:
    """Stands for the function of a finished task whose pickle no longer loads."""
    raise RuntimeError("this task's function could not be read back from its journal")


@dataclass(slots=True)
class Restored:
    """A task read back from a journal. ``problem``: why it cannot run again (its
    function no longer imports, ...); the system then ends it FAILED saying so."""

    seq: int
    task: Task
    key: str | None
    problem: str | None = None
    retry_at: float | None = None
    """The timestamp its pending retry may start at (None: none is pending)."""


class Journal:
    """An open journal: its connection (owned by the writer), its lock, its queue.

    Open one with :meth:`open`. The store calls :meth:`registered`, :meth:`changed` and
    :meth:`dropped` under its lock (they only append), and :meth:`kick` after it; a
    registration calls :meth:`sync` to wait for its row's commit.
    """

    def __init__(self, path: str, db: sqlite3.Connection, lock_fd: int) -> None:
        self.path = path
        self._db = db
        self._lock_fd = lock_fd
        self._changes: Burst[tuple[Any, ...]] = Burst()
        self._posted = 0  # changes queued, counted under the store's lock
        self._committed = 0  # changes committed, counted by the writer's turn holder
        self._turn = threading.Lock()  # held by whoever writes now: one writer at a time
        self._turns = 0  # turns ended so far
        self._written = threading.Condition(threading.Lock())  # a turn ended
        # Waiters for a commit (an asyncio registration's): ``(mark, [callback])``, the
        # list popped by whoever tells it. New ones are appended (no lock); whoever ends a
        # turn moves them into the heap, ordered by mark, and tells those committed.
        self._new_waiters: deque[tuple[int, list[Callable[[JournalError | None], None]]]] = deque()
        self._waiters: list[tuple[int, int, list[Callable[[JournalError | None], None]]]] = []
        self._waiters_lock = threading.Lock()
        self._waiter_numbers = itertools.count()
        self._wake = threading.Event()
        self._unchecked = 0  # about the pages written to the WAL since its checkpoint
        self._checkpoint_due = False
        self._closing = False
        self._closed = False
        # COMPLETED states whose result the writer's own thread pickles, outside the turns.
        self._to_pickle: deque[tuple[Any, ...]] = deque()
        # Registrations whose row could not be written: task id -> why (see refused()).
        self._refused: dict[str, str] = {}
        self._unkeyed = 0  # the mark of the last key given up (see key_owner)
        self._parted: set[int] = set()  # tasks (seq) whose result is in result_parts
        self._reader: sqlite3.Connection | None = None  # key lookups (key_owner)
        self._reader_lock = threading.Lock()
        self.failure: BaseException | None = None
        """The error a write failed with; the journal takes no more changes after one."""
        self.found: list[sqlite3.Row] = []
        """The rows found at open, in registration order (the system reads them back)."""
        self.found_schedules: list[sqlite3.Row] = []
        """The schedules' rows found at open, oldest first."""
        self._thread = threading.Thread(target=self._run, name="actors-journal", daemon=True)

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, sync: str = "normal") -> Journal:
        """Open (or create) the journal at ``path`` and read what it holds.

        Raises:
            JournalError: ``path`` is not a journal, is damaged, cannot be opened, or
                another live process holds it. Nothing is written to it then.
        """
        if fcntl is None:  # pragma: no cover - not POSIX
            raise JournalError("a task journal needs fcntl.flock (a POSIX system)")
        _refuse_foreign_header(path)
        try:
            lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise JournalError(f"cannot open journal {path}: {error.strerror or error}") from None
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise JournalError(
                    f"journal {path} is in use by {_holder(path)}; a journal has one task "
                    "manager at a time (stop that one, or give this one another file)"
                ) from None
            version = _check_schema(path)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute(f"PRAGMA synchronous = {JOURNAL_SYNC[sync]}")
                # Checkpoints are the writer thread's (see _checkpoint), never a commit's.
                db.execute("PRAGMA wal_autocheckpoint = 0")
                if version == 0:
                    db.executescript(_SCHEMA)
                while 0 < version < SCHEMA_VERSION:  # an older journal: made current
                    try:
                        db.executescript(_MIGRATE[version])
                    except BaseException:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        raise
                    _log.info("journal.migrated", path=path, version=version + 1)
                    version += 1
                db.execute("BEGIN")
                db.execute("DELETE FROM holder")
                db.execute(
                    "INSERT INTO holder VALUES (?, ?, ?)",
                    (os.getpid(), socket.gethostname(), datetime.now(UTC).timestamp()),
                )
                db.execute("COMMIT")
                db.row_factory = sqlite3.Row
                found = db.execute("SELECT * FROM tasks ORDER BY seq").fetchall()
                schedules = db.execute("SELECT * FROM schedules ORDER BY created_at").fetchall()
                db.row_factory = None
                # Parts whose task row never said so (a crash between them) go.
                db.execute(
                    "DELETE FROM result_parts WHERE seq NOT IN "
                    f"(SELECT seq FROM tasks WHERE result_kept = {_PARTS_KEPT})"
                )
                parted = {seq for (seq,) in db.execute("SELECT DISTINCT seq FROM result_parts")}
            except BaseException:
                db.close()
                raise
        except sqlite3.Error as error:
            os.close(lock_fd)
            raise JournalError(f"cannot open journal {path}: {error}") from None
        except BaseException:
            os.close(lock_fd)
            raise
        journal = cls(path, db, lock_fd)
        journal.found = found
        journal.found_schedules = schedules
        journal._parted = parted
        journal._thread.start()
        _log.info("journal.opened", path=path, tasks=len(found), sync=sync)
        return journal

    # -- reading back -------------------------------------------------------------------------

    def restore(self, row: sqlite3.Row) -> Restored:
        """The task a row of :attr:`found` describes. A row that cannot be read (a value
        no version of the journal writes, a task module that fails to import, even with
        SystemExit) gives a task that cannot run, its ``problem`` naming the row: the
        system ends it FAILED, the other rows are read on."""
        try:
            return self._restore(row)
        except _UnreadableRowError as unreadable:
            return self._placeholder(row, str(unreadable))

    def _restore(self, row: sqlite3.Row) -> Restored:
        task_id: str = _column(row, "task_id", _str)
        status: TaskStatus = _column(row, "status", _status)
        priority: TaskPriority = _column(row, "priority", TaskPriority)
        dependencies: tuple[str, ...] = _column(row, "dependencies", _str_list)
        tags: tuple[str, ...] = _column(row, "tags", _str_list)
        problem = None
        extra: dict[str, Any] = {}
        try:
            func, args, kwargs, metadata, *more = pickle.loads(row["payload"])
            if more and isinstance(more[0], dict):  # (a 4-tuple before version 3)
                extra = more[0]
        except (Exception, SystemExit) as unreadable:  # noqa: BLE001 - it cannot run again
            func, args, kwargs, metadata = _not_restored, (), {}, {}
            problem = (
                f"its function {read_text(row['func'])} or its arguments cannot be read back "
                f"({type(unreadable).__name__}: {unreadable})"
            )
        error = _load_error(row)
        context = contextvars.copy_context()
        if row["trace"] is not None:
            try:
                context.run(_join_trace, row["trace"])
            except Exception as unreadable:  # noqa: BLE001 - the trace is lost, not the task
                _log.warning(
                    "journal.trace_unreadable",
                    path=self.path,
                    task_id=task_id,
                    error=repr(unreadable),
                )
        result = None
        blob = row["result"]
        if row["result_kept"] == _PARTS_KEPT and row["seq"] in self._parted:
            with self._turn:  # (the writer's connection: before any change is queued)
                blob = b"".join(
                    data
                    for (data,) in self._db.execute(
                        "SELECT data FROM result_parts WHERE seq = ? ORDER BY part", (row["seq"],)
                    )
                )
        if row["result_kept"] and blob is not None:
            try:
                result = pickle.loads(blob)
            except (Exception, SystemExit):  # noqa: BLE001 - the result stays unknown
                _log.warning("journal.result_unreadable", path=self.path, task_id=task_id)
        try:
            task = Task(
                task_id=task_id,
                name=_column(row, "name", _str),
                func=func,
                args=tuple(args),
                kwargs=kwargs,
                priority=priority,
                dependencies=dependencies,
                max_retries=_column(row, "max_retries", _count),
                retry_delay=_column(row, "retry_delay", _seconds),
                timeout=_column(row, "timeout", _optional_seconds),
                description=_column(row, "description", _str),
                tags=tags,
                metadata=metadata,
                executor=_column(row, "executor", _str),
                is_coroutine=problem is None and is_coroutine_function(func),
                context=context,
                status=status,
                result=result,
                error=error,
                progress=1.0 if status is TaskStatus.COMPLETED else 0.0,
                created_at=_column(row, "created_at", _moment) or datetime.now(UTC),
                started_at=_column(row, "started_at", _moment),
                completed_at=_column(row, "completed_at", _moment),
                retry_count=_column(row, "retry_count", _count),
                attempt=_column(row, "attempt", _count),
                not_before=_moment(extra.get("not_before")),
                limit_key=extra.get("limit_key"),
                resources=frozen_mapping(extra.get("resources")),
            )
        except (TypeError, ValueError) as unreadable:  # args or kwargs not what we wrote
            raise _UnreadableRowError(f"its arguments cannot be read back ({unreadable})") from None
        key = _column(row, "key", _optional_str)
        retry_at = _column(row, "retry_at", _optional_seconds) if status is _PENDING else None
        return Restored(row["seq"], task, key, None if status in TERMINAL else problem, retry_at)

    def _placeholder(self, row: sqlite3.Row, reason: str) -> Restored:
        """A task for a row that cannot be read: it cannot run (the system ends it FAILED
        with ``problem``), and keeps what of its id, name and key can be read."""
        seq = row["seq"]
        readable = {}
        for column in ("task_id", "name", "key"):
            with contextlib.suppress(_UnreadableRowError):
                readable[column] = _column(row, column, _str)
        task = Task(
            task_id=readable.get("task_id", f"journal-row-{seq}"),
            name=readable.get("name", "?"),
            func=_not_restored,
            context=contextvars.copy_context(),
        )
        problem = f"its row (seq {seq}) cannot be read: {reason}"
        return Restored(seq, task, readable.get("key"), problem)

    # -- changes, posted by the store -----------------------------------------------------------

    def registered(self, seq: int, task: Task, key: str | None, payload: bytes) -> None:
        """Under the store's lock: ``task`` was added as number ``seq`` (its fields never
        change after)."""
        self._posted += 1
        self._changes.add((_INSERT, seq, task, key, payload, task.status))

    def changed(self, seq: int, task: Task, retry_at: float | None = None) -> int:
        """Under the store's lock: the status of task ``seq`` (and what goes with it)
        changed; ``retry_at``: the timestamp its pending retry may start at. Returns the
        change's mark, for :meth:`wait_for`."""
        self._posted += 1
        self._changes.add(
            (
                _STATE,
                seq,
                task.status,
                task.attempt,
                task.retry_count,
                task.error,
                task.result,
                task.started_at,
                task.completed_at,
                retry_at,
            )
        )
        return self._posted

    def schedule_changed(self, row: tuple[Any, ...]) -> int:
        """Under the store's lock: a schedule was added or changed (``row``: its columns,
        in ``schedules``' order). Returns the change's mark, for :meth:`sync`."""
        self._posted += 1
        self._changes.add((_SCHEDULE, row))
        return self._posted

    def unscheduled(self, schedule_id: str) -> int:
        """Under the store's lock: a schedule was removed. Returns the change's mark."""
        self._posted += 1
        self._changes.add((_UNSCHEDULE, schedule_id))
        return self._posted

    def dropped(self, seq: int, key: str | None = None) -> None:
        """Under the store's lock: task ``seq`` was forgotten; ``key``: its key is given up
        too (the application forgot the task; a pruned task's key is kept)."""
        self._posted += 1
        self._changes.add((_DROP, seq))
        if key is not None:
            self._posted += 1
            self._changes.add((_UNKEY, key))
            self._unkeyed = self._posted

    def key_owner(self, key: str) -> str | None:
        """The id of the task first registered with ``key`` in this journal (this run or
        an earlier one, its task kept or pruned since), or None. Not under the store's
        lock: it reads the file (its own connection, beside the writer's)."""
        if self._committed < self._unkeyed:
            self.sync(self._unkeyed)  # a key given up is gone from the file first
        with self._reader_lock:
            if self._closed:
                return None  # (the store refuses the registration: it is closed too)
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, check_same_thread=False)
            try:
                row = self._reader.execute(
                    "SELECT task_id FROM keys WHERE key = ?", (_storable(key),)
                ).fetchone()
            except sqlite3.Error as error:
                raise JournalError(f"cannot read journal {self.path}: {error}") from None
        return None if row is None else read_text(row[0])

    def kick(self) -> None:
        """After the store's lock: have the writer's thread write what is queued."""
        if not self._changes.empty() and self._changes.claim_wake():
            self._wake.set()

    def wait_for(self, mark: int) -> None:
        """After the store's lock: return once the change ``mark`` is committed (a final
        outcome, before it is told to anyone). A failed write is logged already: the
        outcome is told all the same."""
        with contextlib.suppress(JournalError):
            self.sync(mark)

    def sync(self, target: int | None = None) -> None:
        """Return once every change queued so far (up to ``target``) is committed (a
        registration's wait).

        Takes the writer's turn on this thread when no one holds it; otherwise waits for
        the turn's holder, whose commit may well hold these changes too.

        Raises:
            JournalError: a write failed (the journal takes no more changes).
        """
        if target is None:
            target = self._posted
        while self._committed < target:
            self.check()
            if (
                self._take_turn(None, lambda: self._committed >= target)
                and self._unchecked >= self._CHECKPOINT_PAGES
                and not self._checkpoint_due
            ):
                self._checkpoint_due = True
                self._wake.set()

    @property
    def posted(self) -> int:
        """The mark of the last change queued (for :meth:`when_committed`)."""
        return self._posted

    def when_committed(self, mark: int, callback: Callable[[JournalError | None], None]) -> None:
        """Call ``callback(None)`` once the change ``mark`` is committed, or
        ``callback(error)`` if the journal cannot write it: on the thread that committed
        it, with no lock held, or here if it is known already. Never waits: a
        registration from a coroutine awaits its commit this way, and the registrations
        of many coroutines share one commit."""
        if self._committed < mark and self.failure is None and not self._closed:
            claim = [callback]
            self._new_waiters.append((mark, claim))
            self.kick()
            if self._committed < mark and self.failure is None and not self._closed:
                return  # a turn's end tells it
            try:  # it was committed meanwhile, maybe before that turn looked: tell it
                claim.pop()
            except IndexError:
                return  # told already
        callback(self._outcome_of(mark))

    def _outcome_of(self, mark: int) -> JournalError | None:
        if self._committed >= mark:
            return None
        if self.failure is not None:
            return self._failed()
        return JournalError(f"journal {self.path} closed before the change was written")

    def _tell_committed(self) -> None:
        """After a turn: tell the waiters whose changes are committed (or never will be)."""
        with self._waiters_lock:
            waiters = self._waiters
            new = self._new_waiters
            while new:
                mark, claim = new.popleft()
                heapq.heappush(waiters, (mark, next(self._waiter_numbers), claim))
            committed = self._committed
            ended = self.failure is not None or self._closed
            due: list[tuple[int, list[Callable[[JournalError | None], None]]]] = []
            while waiters and (ended or waiters[0][0] <= committed):
                mark, _number, claim = heapq.heappop(waiters)
                due.append((mark, claim))
        for mark, claim in due:
            try:
                callback = claim.pop()
            except IndexError:
                continue  # its registering thread told it
            try:
                callback(self._outcome_of(mark))
            except Exception as problem:  # noqa: BLE001 - one waiter never stops the others
                _log.error("journal.waiter_failed", path=self.path, error=repr(problem))

    def _take_turn(self, limit: int | None, enough: Callable[[], bool]) -> bool:
        """Write the queued changes (the oldest ``limit``) if the writer's turn is free,
        and say so; else wait for its holder's turn to end, or for ``enough()``. The turns
        are counted, so that a turn ending between the try and the wait is not missed."""
        turns = self._turns
        if self._turn.acquire(blocking=False):
            try:
                self._write_queued(limit)
            finally:
                self._end_turn()
            if self._waiters or self._new_waiters:
                self._tell_committed()
            return True
        with self._written:
            while self._turns == turns and not enough():
                self._written.wait()
        return False

    def check(self) -> None:
        """Raise JournalError if a write has failed or the writer's thread died (it says
        so in ``failure`` as it ends): no registration is taken then."""
        if self.failure is not None:
            raise self._failed()

    def refused(self, task_id: str) -> str | None:
        """After :meth:`sync`: why the registration of ``task_id`` could not be written
        (a value SQLite cannot take), or None. Each refusal is told once; the rest of its
        burst is written all the same and the journal goes on."""
        return self._refused.pop(task_id, None) if self._refused else None

    def _failed(self) -> JournalError:
        return JournalError(
            f"journal {self.path} cannot be written ({self.failure}); tasks are no longer journaled"
        )

    # -- the writer --------------------------------------------------------------------------------

    def _run(self) -> None:
        """The writer's own thread: short turns while changes are queued, until the
        journal closes.

        Short (``_OWN_TURN`` changes at most), and only when no one else has the turn: a
        registration waits for the turn it finds taken, and a long one here (pickling
        hundreds of results while the GIL is shared with the pool's threads) made every
        registration behind it wait.
        """
        checkpointer: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._checkpoint_due or self._unchecked >= self._CHECKPOINT_PAGES:
                    checkpointer = self._checkpoint(checkpointer)
                while self._to_pickle or not self._changes.empty():
                    self._pickle_deferred()  # outside the turn: registrations go on
                    # (with a registration writing, its turn may take ours too)
                    self._take_turn(self._OWN_TURN, _never)
                if self._closing:
                    return
        except BaseException as error:  # noqa: BLE001 - noticed, never spun on (check())
            if self.failure is None:
                self.failure = error
            _log.error("journal.writer_died", path=self.path, error=repr(error))
            with self._written:
                self._written.notify_all()
        finally:
            if checkpointer is not None:
                checkpointer.close()

    def _pickle_deferred(self) -> None:
        """Pickle the deferred results (the writer's own thread, or close, holding no
        turn) and queue their states again, ready to write (``_RESULT``: not counted
        twice, they were counted as written when deferred)."""
        deferred = self._to_pickle
        while deferred:
            change = deferred.popleft()
            blob = _dump(change[6], "result")
            pickled = _Pickled(blob)
            if blob is not None and len(blob) > _PART_SIZE and self._write_parts(change[1], blob):
                pickled = _Pickled(None, parts=True)
            self._changes.add((_RESULT, *change[1:6], pickled, *change[7:]))

    def _write_parts(self, seq: int, blob: bytes) -> bool:
        """Write a large pickled result in parts, each in a turn of its own (the changes
        queued meanwhile, a registration's row among them, go first in that turn: a
        registration waits for one part at most). False if the journal has failed."""
        view = memoryview(blob)
        for part, start in enumerate(range(0, len(blob), _PART_SIZE)):
            with self._turn:
                try:
                    if not self._changes.empty():
                        self._write_queued()
                    if self.failure is not None:
                        return False
                    try:
                        self._db.execute(
                            "INSERT OR REPLACE INTO result_parts VALUES (?, ?, ?)",
                            (seq, part, view[start : start + _PART_SIZE]),
                        )
                    except sqlite3.Error as error:
                        self.failure = error
                        self._rollback()
                        _log.error("journal.write_failed", path=self.path, error=repr(error))
                        return False
                    self._unchecked += 1 + _PART_SIZE // 4096 // 16
                finally:
                    self._end_turn_holding()
        self._parted.add(seq)
        return True

    def _defer(self, changes: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
        """``changes`` less the COMPLETED states whose result may take long to pickle (a
        registration waiting for this turn would wait for the pickling): those go to the
        writer's own thread, pickled outside the turns and written by a turn of their own.
        Until then the task is RUNNING in the file (a crash runs it again: at-least-once,
        as for any end not yet written). Also the number of
        changes that count as written (a ``_RESULT`` was counted when deferred)."""
        kept = None
        count = 0
        for index, change in enumerate(changes):
            kind = change[0]
            if kind == _STATE:
                if (
                    change[2] is _COMPLETED
                    and type(change[6]) not in _CHEAP_RESULTS
                    and not _pickles_at_once(change[6])
                ):
                    if kept is None:
                        kept = changes[:index]
                    self._to_pickle.append(change)
                    count += 1
                    continue
            elif kind == _RESULT:
                count -= 1
            count += 1
            if kept is not None:
                kept.append(change)
        if kept is None:
            return changes, count
        self._wake.set()
        return kept, count

    _CHECKPOINT_PAGES = 1000  # SQLite's own default for wal_autocheckpoint

    def _checkpoint(self, checkpointer: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Copy the WAL into the database, on this thread's own connection: a
        checkpoint (and its fsync) runs beside the writes, never inside a
        registration's commit (where it was a large share of the commit time). A PASSIVE
        one: it never waits for the writer or readers."""
        self._checkpoint_due = False
        self._unchecked = 0
        try:
            if checkpointer is None:
                checkpointer = sqlite3.connect(self.path, isolation_level=None)
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:  # the next one tries again; the writes go on
            _log.warning("journal.checkpoint_failed", path=self.path, error=repr(error))
        return checkpointer

    def _end_turn(self) -> None:
        self._end_turn_holding()
        self._turn.release()

    def _end_turn_holding(self) -> None:
        """Count a turn's end and wake who waits for one (the turn's lock is released
        by the caller)."""
        with self._written:
            self._turns += 1
            self._written.notify_all()

    _OWN_TURN = 64

    def _write_queued(self, limit: int | None = None, *, defer: bool = True) -> None:
        """With the turn: commit the queued changes (every one, or the oldest ``limit``)
        in one transaction.

        A value SQLite cannot take fails its own row only (written again one row at a
        time, the others kept); a failure of the file (disk full, I/O) fails the journal.
        Nothing raised here escapes: a change taken is written, refused or failed.
        """
        changes = self._changes.take() if limit is None else self._changes.take_some(limit)
        if not changes or self.failure is not None:
            return
        try:
            if defer:
                changes, count = self._defer(changes)
            else:
                count = sum(1 for change in changes if change[0] != _RESULT)
            try:
                self._execute(_statements(changes, self._parted))
            except BaseException as error:
                if not _row_error(error):
                    raise
                self._rollback()
                self._write_one_by_one(changes)
        except BaseException as error:  # reported to every registration after
            self.failure = error
            self._rollback()
            _log.error("journal.write_failed", path=self.path, error=repr(error))
            if isinstance(error, KeyboardInterrupt):
                raise
            return
        self._unchecked += 1 + len(changes) // 16
        self._committed += count

    def _execute(self, statements: list[tuple[str, Any]]) -> None:
        db = self._db
        if len(statements) == 1:  # one statement is a transaction of its own
            db.execute(*statements[0])
        elif statements:
            db.execute("BEGIN")
            for statement in statements:
                db.execute(*statement)
            db.execute("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def _write_one_by_one(self, changes: list[tuple[Any, ...]]) -> None:
        """The burst again, in one transaction, each change in a savepoint and its text
        made storable (:func:`_storable`): a change whose row SQLite still cannot take
        is left out and told (a registration's to its caller, through :meth:`refused`)."""
        db = self._db
        db.execute("BEGIN")
        for change in changes:
            try:
                db.execute("SAVEPOINT one_change")
                for sql, parameters in _statements([change], self._parted):
                    db.execute(sql, [_storable(value) for value in parameters])
                db.execute("RELEASE one_change")
            except BaseException as error:
                if not _row_error(error):
                    raise
                db.execute("ROLLBACK TO one_change")
                db.execute("RELEASE one_change")
                self._refuse(change, f"{type(error).__name__}: {error}")
        db.execute("COMMIT")

    def _refuse(self, change: tuple[Any, ...], reason: str) -> None:
        task_id = change[2].task_id if change[0] == _INSERT else None
        if task_id is not None:
            self._refused[task_id] = reason
        _log.error(
            "journal.change_refused",
            path=self.path,
            seq=change[1],
            task_id=task_id,
            error=reason,
        )

    def close(self) -> None:
        """Write what is queued, close the file, let another process have it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._pickle_deferred()  # (left by a writer thread that died; parts take turns)
        with self._turn:
            self._write_queued(defer=False)
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DELETE FROM holder")
            self._db.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self._tell_committed()  # what was written is told so; anything else failed
        os.close(self._lock_fd)  # the flock goes with the last descriptor
        _log.info("journal.closed", path=self.path)


def _insert_row(change: tuple[Any, ...]) -> tuple[Any, ...]:
    _kind, seq, task, key, payload, status = change
    return (
        seq,
        task.task_id,
        key,
        task.name,
        func_name(task.func),
        payload,
        int(task.priority),
        _json_list(task.dependencies),
        task.max_retries,
        task.retry_delay,
        task.timeout,
        task.description,
        _json_list(task.tags),
        task.executor,
        status.name,
        task.attempt,
        task.retry_count,
        task.created_at.timestamp(),
        _trace_of(task),
    )


def _trace_of(task: Task) -> str | None:
    """The registering span's context (W3C headers, as JSON) when tracing is on, so that
    a task run again after a restart stays in its trace. Read in a copy of the task's
    context: the one current at ``register_task``."""
    observer = _tracing.observer
    if observer is None or task.context is None:
        return None
    try:
        headers = task.context.copy().run(observer.headers)
    except Exception as error:  # noqa: BLE001 - a propagator's failure loses the trace only
        _log.warning("journal.trace_not_kept", task_id=task.task_id, error=repr(error))
        return None
    return json.dumps(headers) if headers else None


def _join_trace(headers: str) -> None:
    """In a restored task's context: make the registering span's context current again
    (the task's attempts' spans are then its children). Needs the ``otel`` extra, which
    wrote the headers; without it the trace is left out."""
    try:
        _tracing.join_trace(json.loads(headers))
    except ImportError:
        return


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(values) if values else "[]"


def _state_row(change: tuple[Any, ...]) -> tuple[Any, ...]:
    _kind, seq, status, attempt, retry_count, error, result, started, completed, retry = change
    result_blob = None
    result_kept = None
    if status is TaskStatus.COMPLETED:
        if type(result) is _Pickled and result.parts:
            result_kept = _PARTS_KEPT
        else:
            result_blob = result.blob if type(result) is _Pickled else _dump(result, "result")
            result_kept = int(result_blob is not None)
    return (
        seq,
        status.name,
        attempt,
        retry_count,
        None if error is None else type(error).__name__,
        None if error is None else str(error),
        None if error is None else _dump(error, "error"),
        result_blob,
        result_kept,
        _timestamp(started),
        _timestamp(completed),
        retry,
    )


def _load_error(row: sqlite3.Row) -> TaskError | None:
    if row["error_type"] is None:
        return None
    if row["error"] is not None:
        with contextlib.suppress(Exception, SystemExit):  # (an import may raise either)
            loaded = pickle.loads(row["error"])
            if isinstance(loaded, TaskError):
                return loaded
    kind = getattr(errors, row["error_type"], None)
    if not (isinstance(kind, type) and issubclass(kind, TaskError)):
        kind = TaskExecutionError
    error: TaskError = kind(read_text(row["error_message"]) or "", read_text(row["task_id"]))
    return error


class _UnreadableRowError(Exception):
    """A column of a journal row holds what no journal writes."""


def _column(row: sqlite3.Row, column: str, read: Callable[[Any], Any]) -> Any:
    value = row[column]
    try:
        return read(read_text(value))
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        detail = str(error) if isinstance(error, ValueError | TypeError) else repr(error)
        raise _UnreadableRowError(f"its {column} {value!r} cannot be read ({detail})") from None


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not text but {type(value).__name__}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _status(value: object) -> TaskStatus:
    if not isinstance(value, str) or value not in TaskStatus.__members__:
        raise ValueError(f"not a task status ({', '.join(TaskStatus.__members__)})")
    return TaskStatus[value]


def _str_list(value: object) -> tuple[str, ...]:
    items = json.loads(_str(value))  # ValueError (JSONDecodeError) if not JSON
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("not a JSON list of strings")
    return tuple(items)


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a count (an integer >= 0)")
    return value


def _seconds(value: object) -> float:
    if type(value) not in (int, float) or not 0 <= value < float("inf"):  # type: ignore[operator]
        raise ValueError("not a number of seconds")
    return float(value)  # type: ignore[arg-type]


def _optional_seconds(value: object) -> float | None:
    return None if value is None else _seconds(value)


# -- opening and checking the file -------------------------------------------------------------


def _refuse_foreign_header(path: str) -> None:
    """Refuse a file that is there, not empty, and not SQLite (read only)."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as error:
        raise JournalError(f"cannot read journal {path}: {error.strerror or error}") from None
    if header and header != _SQLITE_HEADER:
        raise JournalError(
            f"{path} is not a task journal (not an SQLite database: it starts with "
            f"{header[:8]!r}); a journal is never written over another file"
        )


def _uri(path: str) -> str:
    """A read-only URI for ``path``. Without a write-ahead log beside it no process
    writes the file (a writer keeps one while it runs): it is read as immutable, so
    SQLite does not leave an empty ``-wal`` and ``-shm`` behind (a read-only connection
    cannot delete them when it closes)."""
    uri = f"{pathlib.Path(path).absolute().as_uri()}?mode=ro"
    return uri if os.path.exists(f"{path}-wal") else f"{uri}&immutable=1"


def open_read_only(path: str) -> sqlite3.Connection:
    """A read-only connection to a journal (usable while a manager writes it).

    Raises:
        JournalError: no such file, or it is not a journal.
    """
    if not os.path.exists(path):
        raise JournalError(f"no journal at {path}")
    _refuse_foreign_header(path)
    try:
        db = sqlite3.connect(_uri(path), uri=True)
    except sqlite3.Error as error:
        raise JournalError(f"cannot open journal {path}: {error}") from None
    try:
        if _schema_state(db, path, check=False) == "new":
            raise JournalError(f"{path} is not a task journal (an empty database)")
    except BaseException:
        db.close()
        raise
    return db


def read_rows(path: str, query: str, arguments: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """The rows ``query`` reads from the journal at ``path``, on a read-only connection of
    their own (``inspect`` and the dashboard's journal view).

    Raises:
        JournalError: no such file, not a journal, or the query failed on it.
    """
    db = open_read_only(path)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(query, arguments).fetchall()
    except sqlite3.Error as error:
        raise JournalError(f"cannot read journal {path}: {error}") from None
    finally:
        db.close()


def _check_schema(path: str) -> int:
    """The journal's schema version (0: a new, empty database); JournalError unless it is
    a journal this version reads.

    Read through a read-only connection: a foreign database is never written, not even
    by a checkpoint of its own write-ahead log when the connection closes.
    """
    try:
        db = sqlite3.connect(_uri(path), uri=True)
    except sqlite3.Error as error:
        raise JournalError(f"cannot open journal {path}: {error}") from None
    try:
        state = _schema_state(db, path, check=True)
        return 0 if state == "new" else int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def _schema_state(db: sqlite3.Connection, path: str, *, check: bool) -> str:
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = sorted(
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        if application_id == 0 and version == 0 and not tables:
            return "new"
        if application_id != APPLICATION_ID:
            shown = ", ".join(tables[:5]) or "none"
            raise JournalError(
                f"{path} is an SQLite database but not a task journal (application_id "
                f"{application_id:#x}, tables: {shown}); a journal is never written over "
                "another database"
            )
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{path} is a task journal of a newer version ({version}; this one reads "
                f"{SCHEMA_VERSION})"
            )
        if version < 1 or "tasks" not in tables:
            raise JournalError(f"{path} is a damaged task journal (version {version})")
        if check:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise JournalError(f"{path} is a damaged task journal: {verdict}")
    except sqlite3.DatabaseError as error:
        raise JournalError(f"{path} is not a task journal or is damaged: {error}") from None
    return "journal"


def _holder(path: str) -> str:
    """Who holds the journal, as its holder row says (best effort, read only)."""
    with contextlib.suppress(sqlite3.Error, JournalError, TypeError):
        db = open_read_only(path)
        try:
            row = db.execute("SELECT pid, host, since FROM holder").fetchone()
        finally:
            db.close()
        if row is not None:
            pid, host, since = row
            started = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
            return f"another live process (pid {pid} on {host}, since {started})"
    return "another live process"
