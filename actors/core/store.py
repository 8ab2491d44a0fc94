"""The task table: every task, its status transitions, its outcome future, its live attempts.

The store outlives the actors and owns every status change, under its one lock, the
innermost lock of the system (nothing is called while holding it but the task's own
bookkeeping). A race between two changes is decided here: the first wins. With a
journal, every change is queued for it under the lock, in order.
"""

from __future__ import annotations

import concurrent.futures
import copy
import enum
import itertools
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from actors.core import messages
from actors.core import tracing as _tracing
from actors.core.attempt import Attempt
from actors.core.context import here, shielded, waiting_for_tasks
from actors.core.events import EventBus
from actors.core.retention import Hold, Retention, TaskId, forgotten_message
from actors.core.task import TERMINAL, Task, TaskStatus, check_transition, detach_metadata
from actors.errors import (
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskExecutionError,
    TaskNotFoundError,
)
from actors.runtime.sync import YieldingLock
from supervision._log import get_logger

if TYPE_CHECKING:
    from actors.durability.journal import Journal

__all__ = ["Ended", "NoRoom", "TaskStore"]

_log = get_logger("actors")

# Enum members read on every attempt's path, as module constants: on Python 3.11
# ``TaskStatus.RUNNING`` is a class attribute lookup through the enum's metaclass,
# several times the cost of reading a global.
_PENDING, _RUNNING, _COMPLETED = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED


Listener = Callable[[Any, "TaskError | None"], None]
"""Told ``(result, None)`` or ``(None, error)`` once a task ends, on the thread that ended it."""


class Ended(enum.Enum):
    """How a running attempt's end was taken by the store."""

    COMPLETED = "completed"
    RETRYING = "retrying"
    """Back to PENDING: the task waits its retry delay, then runs again."""
    FAILED = "failed"
    LOST = "lost"
    """The attempt had already ended (a timeout or a cancel won the race): nothing changed."""


_LOST, _ENDED_COMPLETED = Ended.LOST, Ended.COMPLETED  # (see _PENDING above)


@dataclass(slots=True)
class _Entry:
    task: Task
    seq: int
    owner: object = None  # who registered it (a TaskManager), for stopping only its tasks
    future: concurrent.futures.Future[Any] | None = None  # made when someone asks for it
    # Told the outcome once the task ends: one listener as it is (most tasks have one, its
    # outcome future), several in a list: no list and no partial per task.
    listeners: Listener | list[Listener] | None = None
    attempt: Attempt | None = None
    dependents: int = 0  # unfinished tasks that have this one among their dependencies
    retry_at: float | None = None  # monotonic time before which a retry must not start
    not_before: float | None = None  # a delayed task's start (a timestamp), while it waits
    forget_when_free: bool = False  # past keep_finished, kept while unfinished tasks need it
    key: str | None = None  # its idempotency key, if it was registered with one
    hold: Hold | None = None  # the store's watch on the TaskId the program holds
    # Ended by a stop (or a failed system), not by its own outcome: its journal row stays
    # unfinished (neither its end nor its forgetting is journaled), so the next run on
    # the journal runs it again.
    stopped: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


_FINISHED = "FINISHED"  # concurrent.futures' state of a future that has its outcome


class OutcomeFuture(concurrent.futures.Future[Any]):
    """A task's outcome future. Waiting on it from inside another task gives that task's
    slot back for the wait (see actors.core.context.waiting_for_tasks)."""

    def __call__(self, result: Any, error: TaskError | None) -> None:
        """Take the task's outcome (the store tells it, as any listener)."""
        if error is None:
            self.set_result(result)
        else:
            self.set_exception(error)

    def cancel(self) -> bool:
        """False: whoever holds the future cannot cancel the task through it (only the task
        manager decides how a task ends: ``cancel_task``). Cheaper than marking every
        future running, which takes its Condition."""
        return False

    # ``_state`` is read without the Future's lock: a stale "not finished" only means we
    # take the slower, waiting path (which then takes the lock), never a wrong answer.
    @shielded
    def result(self, timeout: float | None = None) -> Any:
        if self._state == _FINISHED:
            return super().result(timeout)
        with waiting_for_tasks():
            return super().result(self._wait_on_task_thread(timeout))

    @shielded
    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == _FINISHED:
            return super().exception(timeout)
        with waiting_for_tasks():
            return super().exception(self._wait_on_task_thread(timeout))

    def _wait_on_task_thread(self, timeout: float | None) -> float | None:
        """On a task's thread, wait here, where an interrupt of the task can wake the wait
        (it is then raised as the shielded call returns); the timeout left for the wait
        in ``concurrent.futures.Future``. Elsewhere, leave the wait to it."""
        attempt = here.attempt
        if attempt is None:
            return timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        condition = self._condition

        def wake() -> None:  # on the interrupting thread, holding the attempt's lock
            with condition:
                condition.notify_all()

        # The waker is set before the condition is taken and cleared after it is let go,
        # and the loop reads the owed flag without the attempt's lock: the interrupter
        # takes the attempt's lock, then the condition's.
        if not attempt.wait_woken_by(wake):
            return 0.0
        try:
            with condition:
                while self._state != _FINISHED and not attempt.interrupt_owed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    condition.wait(left)
        finally:
            attempt.wait_woken_by(None)
        return 0.0


class NoRoom(Exception):  # noqa: N818 - a signal between store and system, not an error
    """Registration found ``max_pending`` unfinished tasks: ``room`` is set once one ends."""

    def __init__(self, room: threading.Event) -> None:
        super().__init__("no room")
        self.room = room


# Registration reads the ids let go only once this many wait (a task's end reads them
# all): each let-go hold is dropped soon, at a small cost per registration.
_LET_GO_BATCH = 256


class TaskStore:
    """Thread-safe table of tasks. Methods run on the caller's thread."""

    def __init__(
        self,
        events: EventBus,
        *,
        keep_finished: int | None = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_pending: int | None = None,
    ) -> None:
        self._lock = YieldingLock()
        self._max_pending = max_pending
        self._room = threading.Event()
        self._entries: dict[str, _Entry] = {}
        # How many of the entries are in each status, kept as they change (under the
        # lock): metrics read six numbers, not every record (a dashboard asks each second).
        self._counts: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)
        self._keep_finished = keep_finished
        self._retention = Retention(keep_finished)
        self.registered = 0  # tasks registered (not read back from a journal), for metrics
        self._seq = itertools.count()
        self._clock = clock
        self._wall_clock = wall_clock
        self._events = events
        # Attempts whose work has not returned yet (their slot is taken), in start order.
        self._unreleased: dict[Attempt, None] = {}
        self._idle: list[concurrent.futures.Future[None]] = []
        self._release_waiters: dict[Attempt, threading.Event] = {}
        # Why registration is refused, once the system closes it (a stop, a failed system).
        # From then on, the cancels and dependency failures that follow are the stop's, not
        # the tasks' outcomes: they are not journaled (the next run on the journal runs them).
        self._closed: str | None = None
        # Owners (task managers) closed one by one, and why: a weak table, a stopped
        # manager is not kept alive by its system.
        self._closed_owners: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self._journal: Journal | None = None
        self._keys: dict[str, str] = {}  # idempotency key -> the id of its task
        self.dispatching = False
        """Whether the scheduler starts attempts (written by the scheduler actor only; kept
        here so that a restarted scheduler carries on as the last one was)."""

    # -- registration and reading ---------------------------------------------------------

    def register(
        self,
        task: Task,
        owner: object = None,
        key: str | None = None,
        durable: bytes | None = None,
    ) -> tuple[TaskId, str | None]:
        """Add a task, checking its id and dependencies; nothing is added on error.

        Returns the task's id (the TaskId whose holding keeps the task) and the plain id
        the store keeps (for the scheduler's notice: it must not hold the TaskId); with a
        ``key`` already known, the id of the task first registered with it and None
        (nothing is added). ``durable``: the task's pickled form,
        for the journal (given exactly when there is one).

        Raises:
            RuntimeError: the store is closed (its system is stopping, stopped or failed).
            ValueError: the id is taken.
            TaskDependencyError: a dependency is unknown, or is the task itself.
        """
        if (
            key is not None
            and self._journal is not None
            and self._closed is None
            and key not in self._keys
        ):
            # A key outlives its task's record in the journal (see Journal.key_owner):
            # read there, before the lock (no I/O under it).
            first = self._journal.key_owner(key)
            if first is not None:
                return TaskId(first), None  # not in memory: nothing to hold
        with self._lock:
            if self._closed is not None:
                raise RuntimeError(self._closed)
            if self._closed_owners and owner in self._closed_owners:
                raise RuntimeError(self._closed_owners[owner])
            if key is not None:
                first = self._keys.get(key)
                if first is not None:
                    return self._held_locked(self._entries[first]), None
            if self._max_pending is not None and self._unfinished_locked() >= self._max_pending:
                self._room.clear()  # set (under this lock) as one ends: no lost wake-up
                raise NoRoom(self._room)
            self._check_locked(task)
            if task.dependencies:
                self._wait_for_dependencies_locked(task)
            else:
                task.status = TaskStatus.PENDING
            entry = self._entries[task.task_id] = _Entry(task, next(self._seq), owner, key=key)
            if task.not_before is not None:
                self._delay_locked(entry)
            self._counts[task.status] += 1
            held, entry.hold = self._retention.hold(task.task_id, entry.seq)
            self.registered += 1
            if key is not None:
                self._keys[key] = task.task_id
            if durable is not None and self._journal is not None:
                self._journal.registered(entry.seq, task, key, durable)
            if self._retention.backlog > _LET_GO_BATCH:
                self._prune_locked()  # in batches: a bulk of dropped ids costs little each
        _log.info("task.registered", task_id=task.task_id, task_name=task.name, attempt=0)
        return held, task.task_id

    def _held_locked(self, entry: _Entry) -> TaskId:
        """The TaskId the program holds for the task, or a new one it may hold."""
        hold = entry.hold
        held = None if hold is None else hold()
        if held is None:
            held, entry.hold = self._retention.hold(entry.task.task_id, entry.seq)
        return held

    def restore(
        self,
        tasks: list[tuple[int, Task, str | None, bool]],
        journal: Journal,
        retries: dict[str, float] | None = None,
    ) -> None:
        """Add the tasks read back from ``journal`` (registration order), then journal
        every later change there. ``(seq, task, key, changed)``: its registration number
        (its row's: the journal finds its row by it), and ``changed`` if the task's
        status differs from its row's (it could not be read back, and ended FAILED).

        A finished task is kept as it ended (past ``keep_finished``, the oldest are
        forgotten); an unfinished one waits for its dependencies and its ``not_before``
        again, or is ready (an attempt that was running when its process died runs again:
        at-least-once). ``retries``: task id -> the timestamp its pending retry may start
        at (its delay goes on from there).
        """
        with self._lock:
            entries = self._entries
            for seq, task, key, _changed in tasks:
                entries[task.task_id] = _Entry(task, seq, key=key)
                if key is not None:
                    self._keys[key] = task.task_id
            # Numbers go on from the journal's: registration order holds across runs.
            self._seq = itertools.count(max((t[0] for t in tasks), default=-1) + 1)
            self._journal = journal
            finished: list[_Entry] = []
            for _seq, task, _key, changed in tasks:
                entry = entries[task.task_id]
                if task.status in TERMINAL:
                    finished.append(entry)
                else:
                    self._restore_waits_locked(entry, retries)
                if changed:
                    journal.changed(entry.seq, task)
            counts = self._counts = dict.fromkeys(TaskStatus, 0)
            for entry in entries.values():
                counts[entry.task.status] += 1
            finished.sort(key=lambda e: e.task.completed_at or e.task.created_at)
            for e in finished:
                self._retention.add(e.task.task_id, e.seq)
            self._prune_locked()
        journal.kick()

    def _restore_waits_locked(self, entry: _Entry, retries: dict[str, float] | None) -> None:
        """An unfinished task read back waits again for its dependencies, and for its
        pending retry's delay or its ``not_before``, where they are still ahead."""
        task = entry.task
        retry_wall = None if retries is None else retries.get(task.task_id)
        self._wait_for_dependencies_locked(task)
        if retry_wall is not None and task.status is _PENDING:
            left = max(0.0, retry_wall - self._wall_clock())
            entry.retry_at = self._clock() + left
        elif task.not_before is not None and task.attempt == 0:
            self._delay_locked(entry)

    def _delay_locked(self, entry: _Entry) -> None:
        """A task whose ``not_before`` is still ahead WAITS for it (holding no slot)."""
        task = entry.task
        assert task.not_before is not None
        due = task.not_before.timestamp()
        if due > self._wall_clock():
            entry.not_before = due
            if task.status is _PENDING:  # (not a lifecycle move: it never was ready)
                task.status = TaskStatus.WAITING  # counted after (register; restore recounts)

    def delay_left(self, task_id: str) -> float | None:
        """Seconds until a delayed task may start (<= 0: it may now); None if it waits
        for no delay (any more)."""
        entry = self._entries.get(task_id)
        if entry is None or entry.not_before is None or entry.task.status in TERMINAL:
            return None
        return entry.not_before - self._wall_clock()

    def delay_over(self, task_id: str) -> bool:
        """The task's ``not_before`` has come: True if this call ended its wait for it."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None or entry.not_before is None or entry.task.status in TERMINAL:
                return False
            entry.not_before = None
            return True

    def schedule_changed(
        self, schedule_id: str, row: tuple[Any, ...] | None, *, wait: bool
    ) -> None:
        """Journal a schedule's new ``row`` (None: it was removed), in order with the
        tasks' changes; ``wait``: return once it is committed. Nothing without a journal."""
        journal = self._journal
        if journal is None:
            return
        with self._lock:
            if row is None:
                mark = journal.unscheduled(schedule_id)
            else:
                mark = journal.schedule_changed(row)
        if wait:
            journal.sync(mark)
        else:
            journal.kick()

    @property
    def journaled(self) -> bool:
        """Whether changes are journaled (the system has a journal, read back)."""
        return self._journal is not None

    def wall(self) -> float:
        """The wall clock (a timestamp) that delays and schedules are read against."""
        return self._wall_clock()

    def _wait_for_dependencies_locked(self, task: Task) -> None:
        """An unfinished task's dependencies count it, and it WAITS while one is not
        COMPLETED (it is PENDING otherwise)."""
        entries = self._entries
        blocked = plain = False
        for dependency in task.dependencies:
            dep = entries[dependency]
            dep.dependents += 1
            blocked = blocked or dep.task.status is not TaskStatus.COMPLETED
            plain = plain or type(dependency) is not str
        task.status = TaskStatus.WAITING if blocked else TaskStatus.PENDING
        if plain:
            # A TaskId given as a dependency: the record keeps the dependency's own plain
            # id instead (holding the TaskId would keep that task; a copy would cost memory).
            task.dependencies = tuple([entries[d].task.task_id for d in task.dependencies])

    def check(self, task: Task) -> None:
        """Raise what :meth:`register` would raise for ``task`` now; add nothing."""
        with self._lock:
            if self._closed is not None:
                raise RuntimeError(self._closed)
            self._check_locked(task)

    def _check_locked(self, task: Task) -> None:
        if task.task_id in self._entries:
            raise ValueError(f"a task with id {task.task_id!r} is already registered")
        for dependency in task.dependencies:
            if dependency == task.task_id:
                raise TaskDependencyError(
                    f"task {task.name!r} ({task.task_id}) depends on itself (a dependency cycle)",
                    task.task_id,
                    {"cycle": [task.task_id, task.task_id]},
                )
            if dependency not in self._entries:
                raise TaskDependencyError(
                    f"task {task.name!r} ({task.task_id}) depends on unknown task {dependency!r}",
                    task.task_id,
                    {"dependency": dependency},
                )

    def close(self, reason: str, owner: object = None) -> list[str]:
        """Refuse registrations from now on (with ``reason``); the unfinished tasks' ids.

        With ``owner``, only that owner's registrations are refused from now on, and only
        its unfinished tasks are listed. Atomic with registration: a task is either
        registered before (and listed) or refused.
        """
        with self._lock:
            if owner is not None:
                self._closed_owners[owner] = reason
            elif self._closed is None:
                self._closed = reason
            return [
                task_id
                for task_id, e in self._entries.items()
                if e.task.status not in TERMINAL and (owner is None or e.owner is owner)
            ]

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self, task_id: str) -> Task | None:
        with self._lock:
            entry = self._entries.get(task_id)
            task = None if entry is None else copy.copy(entry.task)
        # Deep copies outside the lock: a task's metadata never changes after registration.
        return None if task is None else detach_metadata(task)

    def status(self, task_id: str) -> TaskStatus | None:
        entry = self._entries.get(task_id)
        return None if entry is None else entry.task.status

    def snapshots(self, keep: Callable[[Task], bool] | None = None) -> list[Task]:
        with self._lock:
            tasks = [
                copy.copy(e.task) for e in self._entries.values() if keep is None or keep(e.task)
            ]
        return [detach_metadata(task) for task in tasks]

    def records(self) -> list[Task]:
        """Every live record in registration order, read-only for the caller: a view that
        pages through 100,000 tasks without copying them (a reader sees each field as it
        is at the moment it reads it; ``snapshot`` gives a consistent copy)."""
        with self._lock:
            return [e.task for e in self._entries.values()]

    def future(self, task_id: str) -> concurrent.futures.Future[Any]:
        """The task's outcome future, made on first request (most tasks never need one).

        Whoever ends the task sets a future made before; one made after the end is set
        here. Either way under the lock, so it is set exactly once.
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(forgotten_message(task_id, self._keep_finished), task_id)
            if entry.future is not None:
                return entry.future
            future = OutcomeFuture()
            entry.future = future
            task = entry.task
            if task.status not in TERMINAL:
                # Resolved by whoever ends the task: the future is its own listener.
                self._listen_locked(entry, future)
                return future
            result, error = task.result, task.error
        future(result, error)
        return future

    def counts(self) -> Counter[TaskStatus]:
        with self._lock:
            return Counter(self._counts)

    def rebuild_view(self) -> tuple[list[str], list[Attempt]]:
        """The unfinished tasks' ids (registration order) and the attempts holding a slot.

        Call it while holding :meth:`locked` so that no change slips in between.
        """
        unfinished = [t for t, e in self._entries.items() if e.task.status not in TERMINAL]
        return unfinished, list(self._unreleased)

    def locked(self) -> YieldingLock:
        return self._lock

    def task(self, task_id: str) -> Task | None:
        """The live record (read-only for the caller); None if unknown or forgotten."""
        entry = self._entries.get(task_id)
        return None if entry is None else entry.task

    def task_and_place(self, task_id: str) -> tuple[Task, tuple[int, int, str], bool] | None:
        """The live record, its ready-queue item (higher priority first, then registration
        order) and whether a retry delay is pending, in one look; None if the task is
        unknown or forgotten."""
        entry = self._entries.get(task_id)
        if entry is None:
            return None
        task = entry.task
        return task, (-task.priority, entry.seq, task_id), entry.retry_at is not None

    # -- forgetting finished tasks ----------------------------------------------------------

    def _unfinished_locked(self) -> int:
        """Under the lock: the tasks not finished yet (what ``max_pending`` bounds)."""
        counts = self._counts
        return counts[_PENDING] + counts[_RUNNING] + counts[TaskStatus.WAITING]

    def _release_dependencies_locked(self, entry: _Entry) -> None:
        """Under the lock, once a task reached a final state: it no longer holds its
        dependencies in memory, and the oldest finished tasks past ``keep_finished``
        are forgotten (those that unfinished tasks still depend on, once they finish)."""
        if self._max_pending is not None and self._unfinished_locked() < self._max_pending:
            self._room.set()  # (an Event's own lock, nothing told: waiters retry)
        entries = self._entries
        for dependency in entry.task.dependencies:
            dep = entries.get(dependency)
            if dep is not None:
                dep.dependents -= 1
                if not dep.dependents and dep.forget_when_free:
                    self._drop_locked(dep)
        if self._retention.finished(entry.task.task_id, entry.seq, entry.hold):
            entry.hold = None
        self._prune_locked()

    def _prune_locked(self) -> None:
        """Forget the oldest finished tasks past ``keep_finished`` (or mark them, while
        unfinished tasks depend on them)."""
        retention = self._retention
        entries = self._entries
        if retention.backlog:
            for hold in retention.released():
                let_go = entries.get(hold.task_id)
                if let_go is not None and let_go.hold is hold:
                    let_go.hold = None  # (an unfinished one joins the window as it ends)
                    if let_go.task.status in TERMINAL:
                        retention.add(hold.task_id, hold.seq)
        for task_id, seq in retention.excess():
            old = entries.get(task_id)
            if old is None or old.seq != seq:
                continue  # forgotten already (and perhaps the id used again)
            if old.hold is not None and old.hold() is not None:
                continue  # held again (a key's lookup gave its id out): its end adds it back
            retention.forgotten += 1
            if old.dependents:
                old.forget_when_free = True
            else:
                self._drop_locked(old)

    def _drop_locked(self, entry: _Entry, *, forgotten: bool = False) -> None:
        """A finished task is forgotten: it leaves the store and its counts, its key
        leaves the memory, and the journal forgets the task too; ``forgotten`` (by the
        application, not pruned): its key as well. The journal keeps a pruned task's
        key, so that a key lasts as long as the journal."""
        del self._entries[entry.task.task_id]
        self._counts[entry.task.status] -= 1
        if entry.key is not None:
            del self._keys[entry.key]
        if self._journal is not None and not entry.stopped:
            self._journal.dropped(entry.seq, entry.key if forgotten else None)

    def forget(self, task_id: str) -> bool:
        """Drop a finished task now; False if it is unknown, unfinished, or an unfinished
        task depends on it. A future already handed out keeps its outcome."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None or entry.task.status not in TERMINAL or entry.dependents:
                return False
            self._drop_locked(entry, forgotten=True)
            journal = self._journal
        if journal is not None:
            journal.kick()
        return True

    # -- attempts holding slots ---------------------------------------------------------------

    def release(self, attempt: Attempt) -> bool:
        """The attempt's work has really returned; True if this call let its slot go."""
        if attempt.released:  # only ever goes from False to True
            return False
        with self._lock:
            released, idle = self._release_locked(attempt)
        for future in idle:
            future.set_result(None)
        return released

    def _release_locked(
        self, attempt: Attempt
    ) -> tuple[bool, list[concurrent.futures.Future[None]]]:
        if attempt.released:
            return False, []
        attempt.released = True
        del self._unreleased[attempt]
        if self._release_waiters:
            waiter = self._release_waiters.pop(attempt, None)
            if waiter is not None:
                waiter.set()
        if self._unreleased:
            return True, []
        idle, self._idle = self._idle, []
        return True, idle

    def when_idle(self) -> concurrent.futures.Future[None]:
        """A future that is done once no attempt's work is running any more."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if self._unreleased:
                self._idle.append(future)
                return future
        future.set_result(None)
        return future

    def when_released(self, attempt: Attempt) -> threading.Event:
        """An event set once ``attempt``'s work has returned (set already if it has)."""
        with self._lock:
            waiter = self._release_waiters.get(attempt)
            if waiter is None:
                waiter = threading.Event()
                if attempt.released:
                    waiter.set()
                else:
                    self._release_waiters[attempt] = waiter
            return waiter

    def unreleased(self) -> list[Attempt]:
        """The attempts whose work has not returned yet, oldest first."""
        with self._lock:
            return list(self._unreleased)

    def load(self) -> tuple[Counter[str], Counter[str]]:
        """Per executor: slots taken by work still running, and of those, abandoned ones
        (their attempt ended by a timeout or cancel while their thread runs on)."""
        with self._lock:
            busy: Counter[str] = Counter()
            abandoned: Counter[str] = Counter()
            for attempt in self._unreleased:
                busy[attempt.executor] += 1
                entry = self._entries.get(attempt.task_id)
                if entry is None or entry.attempt is not attempt:
                    abandoned[attempt.executor] += 1
            return busy, abandoned

    # -- transitions ----------------------------------------------------------------------

    def mark_ready(self, task_id: str) -> bool:
        """WAITING -> PENDING once every dependency completed; False if it is not WAITING."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return False
            task = entry.task
            if task.status is TaskStatus.PENDING:
                return True
            if task.status is not TaskStatus.WAITING or entry.not_before is not None:
                return False
            self._move(task, TaskStatus.PENDING)
            return True

    def retry_at(self, task_id: str) -> float | None:
        """When a task waiting to be retried may start again (None: it is not waiting)."""
        entry = self._entries.get(task_id)
        return None if entry is None else entry.retry_at

    def needs_settling(self, task_id: str) -> bool:
        """Whether the dependency graph must hear that this task left RUNNING.

        It must for a task waiting to be retried (to arm the timer) and for one that
        others depend on (to wake or fail them). Read after the change: a dependent
        registered later sees the task already finished and needs no notice.
        """
        entry = self._entries.get(task_id)
        if entry is None:
            return False
        return entry.dependents > 0 or entry.task.status is _PENDING

    def retry_ready(self, task_id: str, attempt: int) -> bool:
        """The retry delay after ``attempt`` has passed: the task may start again."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return False
            task = entry.task
            if (
                task.status is not TaskStatus.PENDING
                or task.attempt != attempt
                or entry.retry_at is None
            ):
                return False
            entry.retry_at = None
            return True

    def now(self) -> float:
        return self._clock()

    def begin_attempt(self, task_id: str) -> Attempt | None:
        """PENDING -> RUNNING, the attempt holding a slot; None if it is no longer PENDING.

        The caller announces the attempt (:meth:`announce`) before it runs: this one is
        on the hot path of every attempt and does nothing but the transition.
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return None
            task = entry.task
            if task.status is not _PENDING or entry.retry_at is not None:
                return None
            self._set_status(task, _RUNNING)  # PENDING -> RUNNING: legal, checked above
            task.attempt += 1
            if task.started_at is None:
                task.started_at = _now()
            attempt = entry.attempt = Attempt(
                task, task.attempt, self.report_progress, self._result_of
            )
            self._unreleased[attempt] = None
            journal = self._journal
            if journal is not None:
                journal.changed(entry.seq, task)
        if journal is not None:
            journal.kick()
        return attempt

    @property
    def forgotten(self) -> int:
        """How many finished tasks were forgotten past ``keep_finished`` (not by forget)."""
        return self._retention.forgotten

    def _result_of(self, task_id: str) -> Any:
        """A finished dependency's result, for an attempt's ``inputs`` (no lock: a
        dependency is kept, and its result final, while a dependent runs)."""
        entry = self._entries.get(task_id)
        if entry is None or entry.task.status is not TaskStatus.COMPLETED:
            raise TaskDependencyError(f"the result of task {task_id!r} is not there", task_id)
        return entry.task.result

    def announce(self, attempt: Attempt) -> None:
        """Log and emit TaskStarted for an attempt that :meth:`begin_attempt` began."""
        task = attempt.task
        _log.info("task.started", task_id=task.task_id, task_name=task.name, attempt=attempt.number)
        if self._events.subscriptions and self._events.wants(task.task_id):
            self._events.emit(
                messages.TaskStarted(task.task_id, task.name, attempt.number, task.limit_key)
            )

    def undo_attempt(self, attempt: Attempt) -> None:
        """The attempt could not be handed to its executor: back to PENDING, slot freed."""
        with self._lock:
            entry = self._entries.get(attempt.task_id)
            if entry is not None and entry.attempt is attempt:
                self._move(entry.task, TaskStatus.PENDING)
                entry.task.attempt -= 1
                entry.attempt = None
                if self._journal is not None:
                    self._journal.changed(entry.seq, entry.task)
        if self._journal is not None:
            self._journal.kick()
        self.release(attempt)

    def complete(self, attempt: Attempt, result: Any) -> Ended:
        """RUNNING -> COMPLETED with ``result``, and the slot let go (the work returned),
        under one acquisition of the lock: this is every successful attempt's path.
        ``Ended.LOST`` if the attempt had already ended (the slot is let go either way).
        """
        with self._lock:
            _released, idle = self._release_locked(attempt)
            journal = self._journal
            entry = self._entries.get(attempt.task_id)
            ended = entry is not None and entry.attempt is attempt
            if ended:
                assert entry is not None
                task = entry.task
                task.result = result
                task.error = None  # a failed earlier attempt is no longer the task's error
                task.progress = 1.0
                if task.status is not _RUNNING:  # (the live attempt's task is)
                    check_transition(task.task_id, task.status, _COMPLETED)
                self._set_status(task, _COMPLETED)
                task.completed_at = _now()
                entry.attempt = None
                self._release_dependencies_locked(entry)
                if journal is not None:
                    journal.changed(entry.seq, task)
        if ended and journal is not None:
            # Written a moment later, not waited for: waiting here for each commit would
            # cost a large share of the journaled throughput.
            journal.kick()
        for idle_future in idle:
            idle_future.set_result(None)
        if not ended:
            return _LOST
        assert entry is not None
        observed = attempt.observed
        if observed is not None:  # ended before the waiters wake, as the log and events
            _tracing.ended(observed, task.task_id, None)
        # Logged and told before the waiters wake: a waiter that looks finds it there.
        _log.info(
            "task.completed", task_id=task.task_id, task_name=task.name, attempt=attempt.number
        )
        if self._events.subscriptions and self._events.wants(task.task_id):
            self._events.emit(
                messages.TaskSucceeded(task.task_id, result, task.name, attempt.number)
            )
        if entry.listeners is not None:
            self._tell_listeners(entry, result, None)
        return _ENDED_COMPLETED

    def fail_attempt(
        self, attempt: Attempt, error: TaskError, retry_delay: Callable[[int], float] | None
    ) -> Ended:
        """End a running attempt with ``error``.

        With ``retry_delay`` and retries left, the task goes back to PENDING to wait
        ``retry_delay(retry number)`` seconds (``Ended.RETRYING``); otherwise it ends
        FAILED. ``Ended.LOST`` if the attempt had already ended.
        """
        task = attempt.task
        # The retry's delay is computed before the lock (tenacity is not our code): the
        # count it is for cannot change meanwhile, only this attempt's end changes it.
        retry = task.retry_count + 1
        if retry_delay is not None and retry <= task.max_retries:
            delay = retry_delay(retry)
        else:
            retry_delay = None
        with self._lock:
            entry = self._entries.get(attempt.task_id)
            if entry is None or entry.attempt is not attempt:
                return Ended.LOST
            task.error = error
            if retry_delay is not None:
                entry.attempt = None
                task.retry_count = retry
                entry.retry_at = self._clock() + delay
                self._move(task, TaskStatus.PENDING)
                retrying = True
            else:
                self._end_locked(entry, TaskStatus.FAILED)
                retrying = False
            journal = self._journal
            if journal is not None:
                journal.changed(entry.seq, task, self._wall_clock() + delay if retrying else None)
        if journal is not None:
            journal.kick()
        if attempt.observed is not None:
            _tracing.ended(attempt.observed, task.task_id, error, delay if retrying else None)
        if retrying:
            raised = error.original_error if isinstance(error, TaskExecutionError) else None
            _log.warning(
                "task.retrying",
                task_id=task.task_id,
                task_name=task.name,
                attempt=attempt.number,
                delay=delay,
                error=str(error),
            )
            if self._events.subscriptions and self._events.wants(task.task_id):
                self._events.emit(
                    messages.TaskRetrying(
                        task.task_id,
                        attempt.number,
                        delay,
                        str(error),
                        task.name,
                        type(raised or error).__name__,
                    )
                )
            return Ended.RETRYING
        self._finish_failed(entry, attempt.number)
        return Ended.FAILED

    def fail_dependency(self, task_id: str, dependency: str) -> bool:
        """WAITING/PENDING -> FAILED because ``dependency`` failed or was cancelled."""
        with self._lock:
            entry = self._entries.get(task_id)
            dep_entry = self._entries.get(dependency)
            if entry is None or dep_entry is None:
                return False
            task = entry.task
            if task.status not in (TaskStatus.WAITING, TaskStatus.PENDING):
                return False
            dep = dep_entry.task
            task.error = TaskDependencyError(
                f"task {task.name!r} ({task_id}) cannot run: its dependency {dep.name!r} "
                f"({dependency}) {dep.status.name}",
                task_id,
                {
                    "dependency": dependency,
                    "dependency_name": dep.name,
                    "dependency_status": dep.status.name,
                },
            )
            if dep_entry.stopped or self._closed is not None:
                entry.stopped = True  # a stop's consequence, not the task's outcome
            self._end_locked(entry, TaskStatus.FAILED)
            journal = self._journal
            if journal is not None and not entry.stopped:
                journal.changed(entry.seq, task)
        if journal is not None:
            journal.kick()
        self._finish_failed(entry, task.attempt)
        return True

    def abort(self, task_ids: Iterable[str], error: Callable[[Task], TaskError]) -> list[Attempt]:
        """End every unfinished task of ``task_ids`` FAILED with ``error(task)``; the
        attempts that were running (the caller interrupts them). For a system that failed."""
        ended: list[_Entry] = []
        attempts: list[Attempt] = []
        with self._lock:
            for task_id in task_ids:
                found = self._entries.get(task_id)
                if found is None or found.task.status in TERMINAL:
                    continue
                entry, task = found, found.task
                if entry.attempt is not None:
                    attempts.append(entry.attempt)
                    entry.attempt.cancelled.set()
                task.error = error(task)
                entry.stopped = True
                self._end_locked(entry, TaskStatus.FAILED)
                ended.append(entry)
            # Not journaled: the system failed, not the tasks (the next manager on the
            # journal runs them), nor their forgetting; other tasks their end made
            # forgotten are.
        if self._journal is not None:
            self._journal.kick()
        for attempt in attempts:
            if attempt.observed is not None:
                _tracing.ended(attempt.observed, attempt.task_id, attempt.task.error)
        for entry in ended:
            self._finish_failed(entry, entry.task.attempt)
        return attempts

    def cancel(self, task_id: str, *, lasting: bool = True) -> tuple[bool, Attempt | None]:
        """End an unfinished task CANCELLED.

        ``lasting``: the application cancelled it (journaled: it stays cancelled); False
        for a stop's cancel, which leaves the task unfinished in the journal.

        Returns (True, the running attempt or None) if this call cancelled it; the caller
        interrupts the attempt. (False, None) if the task had already finished.
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(forgotten_message(task_id, self._keep_finished), task_id)
            task = entry.task
            if task.status in TERMINAL:
                return False, None
            attempt = entry.attempt
            if attempt is not None:
                attempt.cancelled.set()
            task.error = TaskCancellationError(
                f"task {task.name!r} ({task_id}) was cancelled", task_id
            )
            if not lasting or self._closed is not None:
                entry.stopped = True  # (before _end_locked: its pruning must know)
            self._end_locked(entry, TaskStatus.CANCELLED)
            journal = self._journal
            mark = None
            if journal is not None and not entry.stopped:
                mark = journal.changed(entry.seq, task)
        if journal is not None:
            if mark is None:
                journal.kick()
            else:  # asked for by the application: on disk when the call returns
                journal.wait_for(mark)
        if attempt is not None and attempt.observed is not None:
            _tracing.ended(attempt.observed, task_id, task.error)
        self._finish_failed(entry, task.attempt)
        return True, attempt

    def report_progress(self, task_id: str, attempt: int, fraction: float, message: str) -> None:
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return  # a late report from an attempt whose task is forgotten
            task = entry.task
            if task.attempt != attempt or task.status is not TaskStatus.RUNNING:
                return  # a late report from an attempt that already ended
            task.progress, task.progress_message = fraction, message
        if self._events.wants(task_id):
            self._events.emit(messages.TaskProgress(task_id, attempt, fraction, message, task.name))

    def _move(self, task: Task, new: TaskStatus) -> None:
        """Under the lock: a task in the store changes status (a legal change only)."""
        check_transition(task.task_id, task.status, new)
        self._set_status(task, new)

    def _set_status(self, task: Task, new: TaskStatus) -> None:
        """Under the lock: a task in the store takes status ``new``, and the counts by
        status follow (the caller has checked that the change is legal)."""
        counts = self._counts
        counts[task.status] -= 1
        counts[new] += 1
        task.status = new

    def _end_locked(self, entry: _Entry, final: TaskStatus) -> None:
        """Under the lock: the task reaches its final status; its attempt (if any) is over."""
        task = entry.task
        self._move(task, final)
        task.completed_at = _now()
        entry.attempt = None
        self._release_dependencies_locked(entry)

    def _finish_failed(self, entry: _Entry, attempt: int) -> None:
        """After a task ended FAILED or CANCELLED: log it, tell subscribers and waiters."""
        task = entry.task
        error = task.error
        assert error is not None
        # A cancel is asked for: info. A final failure is an error.
        cancelled = task.status is TaskStatus.CANCELLED
        (_log.info if cancelled else _log.error)(
            "task.cancelled" if cancelled else "task.failed",
            task_id=task.task_id,
            task_name=task.name,
            attempt=attempt,
            error=str(error),
        )
        if self._events.subscriptions and self._events.wants(task.task_id):
            self._events.emit(messages.TaskFailed.from_error(error, task.name, attempt))
        if entry.listeners is not None:  # logged and told before the waiters wake
            self._tell_listeners(entry, None, error)

    @staticmethod
    def _listen_locked(entry: _Entry, listener: Listener) -> None:
        listeners = entry.listeners
        if listeners is None:
            entry.listeners = listener
        elif isinstance(listeners, list):
            listeners.append(listener)
        else:
            entry.listeners = [listeners, listener]

    @staticmethod
    def _tell_listeners(entry: _Entry, result: Any, error: TaskError | None) -> None:
        # The task is final: no listener is added any more (when_done sees it final).
        listeners, entry.listeners = entry.listeners, None
        for listener in listeners if isinstance(listeners, list) else (listeners,):
            if listener is None:
                continue
            try:
                listener(result, error)
            except Exception:  # noqa: BLE001 - one waiter never breaks a task
                _log.error("task.listener_failed", task_id=entry.task.task_id, exc_info=True)

    def when_done(self, task_id: str, listener: Listener) -> None:
        """Tell ``listener`` the task's outcome once it ends (at once if it has): a
        cheaper wait than a future's (no Condition), for asyncio waiters.

        Raises:
            TaskNotFoundError: no such task (or it was forgotten).
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(forgotten_message(task_id, self._keep_finished), task_id)
            task = entry.task
            if task.status not in TERMINAL:
                self._listen_locked(entry, listener)
                return
            result, error = task.result, task.error
        if task.status is TaskStatus.COMPLETED:
            listener(result, None)
        else:
            listener(None, error)
