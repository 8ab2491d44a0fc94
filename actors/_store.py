"""The task table: every task, its outcome future and the busy slots, outside any actor.

The store is the single source of truth. Every change of a task's status happens here,
under one lock, through the lifecycle's legal transitions; a change that races with
another (a cancel against a completion, a timeout against a late result) is decided here:
the first one wins and the other is told so. The scheduler actor keeps only indices
derived from the store, so a restarted scheduler rebuilds them and loses nothing.
"""

from __future__ import annotations

import concurrent.futures
import copy
import ctypes
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pykka

from actors import messages
from actors._context import CancelFlag, TaskContext
from actors._task import TERMINAL, Task, TaskStatus, check_transition
from actors.errors import (
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskNotFoundError,
)
from supervision import Cancellable
from supervision._log import get_logger

__all__ = ["Attempt", "Interrupted", "Subscription", "TaskStore"]

_log = get_logger("actors")


class Interrupted(BaseException):
    """Raised asynchronously in a worker thread whose attempt timed out or was cancelled.

    A BaseException so that the task's own ``except Exception`` does not swallow it.
    """


class Attempt:
    """One attempt of a task: its context, and how to interrupt the work running it.

    Created by the store when the attempt starts; the runner on the executor says where
    the work runs (a thread ident, or a way to cancel an asyncio task).
    """

    __slots__ = (
        "_cancel_async",
        "_interrupted",
        "_lock",
        "_thread",
        "cancelled",
        "context",
        "deadline",
        "executor",
        "number",
        "released",
        "task",
    )

    def __init__(self, task: Task, number: int, executor: str, store: TaskStore) -> None:
        self.task = task  # the live record; read-only outside the store's lock
        self.number = number
        self.executor = executor
        self.cancelled = CancelFlag()
        self.released = False
        self.deadline: Cancellable | None = None  # the timeout's timer, if any
        task_id = task.task_id
        self.context = TaskContext(
            task_id,
            number,
            self.cancelled,
            lambda fraction, message: store.report_progress(task_id, number, fraction, message),
        )
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._cancel_async: Callable[[], object] | None = None
        self._interrupted = False

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def interrupted(self) -> bool:
        """A timeout or a cancel has interrupted this attempt."""
        return self._interrupted

    def running_in_thread(self, ident: int | None) -> bool:
        """The calling thread runs the work now (``ident``), or no longer does (None).

        False if the attempt was interrupted before its work started: do not start it.
        """
        with self._lock:
            if ident is not None and self._interrupted:
                return False
            self._thread = ident
            return True

    def running_as_coroutine(self, cancel: Callable[[], object] | None) -> bool:
        """As running_in_thread, for a coroutine that ``cancel`` cancels."""
        with self._lock:
            if cancel is not None and self._interrupted:
                return False
            self._cancel_async = cancel
            return True

    def interrupt(self) -> None:
        """Stop the work where Python can: cancel the coroutine, or raise in the thread.

        Work that has not started yet never starts.
        """
        with self._lock:
            self._interrupted = True
            if self._cancel_async is not None:
                self._cancel_async()
            if self._thread is not None:
                # The thread checks for this exception between bytecodes; a thread blocked
                # in C code (sleep, I/O) sees it when that call returns.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(Interrupted)
                )


@dataclass(frozen=True, slots=True)
class Subscription:
    ref: pykka.ActorRef[Any]
    task_ids: frozenset[str] | None


@dataclass(slots=True)
class _Entry:
    task: Task
    seq: int
    future: concurrent.futures.Future[Any] | None = None  # made when someone asks for it
    attempt: Attempt | None = None
    dependents: int = 0  # tasks registered with this one among their dependencies
    retry_at: float | None = None  # monotonic time before which a retry must not start


class YieldingLock:
    """A mutex whose waiter first gives the GIL away a few times, then sleeps.

    The task store's lock is taken by every pool thread a few times per attempt, and by
    callers asking for futures, and held for microseconds by a thread that has the GIL.
    A waiter that sleeps in the kernel at once is woken owning the lock but not the GIL;
    the GIL's holder then needs the lock and sleeps too, and the threads fall into a
    convoy of a context switch or more per attempt. Yielding (``time.sleep(0)`` lets
    the holder run) usually finds the lock free again; a waiter that still finds it
    taken sleeps on it as usual. Measured in examples/benchmark.py scenario 1: about
    12% more tasks/s than a plain Lock.
    """

    __slots__ = ("_lock",)

    _YIELDS = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> None:
        try_acquire = self._lock.acquire
        if try_acquire(False):
            return
        for _ in range(self._YIELDS):
            time.sleep(0)
            if try_acquire(False):
                return
        try_acquire()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def _now() -> datetime:
    return datetime.now(UTC)


class TaskStore:
    """Thread-safe table of tasks. Methods run on the caller's thread."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = YieldingLock()
        self._entries: dict[str, _Entry] = {}
        self._seq = itertools.count()
        self._busy: Counter[str] = Counter()
        self._busy_total = 0
        self._subscriptions: list[Subscription] = []
        self._clock = clock
        self._idle: list[concurrent.futures.Future[None]] = []
        self.dispatching = False
        self.max_concurrent = 4

    # -- registration and reading ---------------------------------------------------------

    def register(self, task: Task) -> None:
        """Add a task, checking its id and dependencies; nothing is added on error.

        Raises:
            ValueError: the id is taken.
            TaskDependencyError: a dependency is unknown, or is the task itself.
        """
        with self._lock:
            self._check_locked(task)
            blocked = any(
                self._entries[d].task.status is not TaskStatus.COMPLETED for d in task.dependencies
            )
            task.status = TaskStatus.WAITING if blocked else TaskStatus.PENDING
            for dependency in task.dependencies:
                self._entries[dependency].dependents += 1
            self._entries[task.task_id] = _Entry(task, next(self._seq))
        _log.info("task.registered", task_id=task.task_id, name=task.name, attempt=0)

    def check(self, task: Task) -> None:
        """Raise what :meth:`register` would raise for ``task`` now; add nothing."""
        with self._lock:
            self._check_locked(task)

    def _check_locked(self, task: Task) -> None:
        if task.task_id in self._entries:
            raise ValueError(f"a task with id {task.task_id!r} is already registered")
        for dependency in task.dependencies:
            if dependency == task.task_id:
                raise TaskDependencyError(
                    f"task {task.task_id} depends on itself (a dependency cycle)",
                    task.task_id,
                    {"cycle": [task.task_id, task.task_id]},
                )
            if dependency not in self._entries:
                raise TaskDependencyError(
                    f"task {task.task_id} depends on unknown task {dependency!r}",
                    task.task_id,
                    {"dependency": dependency},
                )

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self, task_id: str) -> Task | None:
        with self._lock:
            entry = self._entries.get(task_id)
            return None if entry is None else copy.copy(entry.task)

    def status(self, task_id: str) -> TaskStatus | None:
        entry = self._entries.get(task_id)
        return None if entry is None else entry.task.status

    def snapshots(self, keep: Callable[[Task], bool] | None = None) -> list[Task]:
        with self._lock:
            return [
                copy.copy(e.task) for e in self._entries.values() if keep is None or keep(e.task)
            ]

    def future(self, task_id: str) -> concurrent.futures.Future[Any]:
        """The task's outcome future, made on first request (most tasks never need one).

        Whoever ends the task sets a future made before; one made after the end is set
        here. Either way under the lock, so it is set exactly once.
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(f"no task with id {task_id!r}", task_id)
            if entry.future is not None:
                return entry.future
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            # A running future cannot be cancelled by whoever holds it: only the task
            # manager decides how a task ends.
            future.set_running_or_notify_cancel()
            entry.future = future
            task = entry.task
            status, result, error = task.status, task.result, task.error
        if status is TaskStatus.COMPLETED:
            future.set_result(result)
        elif status in TERMINAL:
            assert error is not None
            future.set_exception(error)
        return future

    def counts(self) -> Counter[TaskStatus]:
        with self._lock:
            return Counter(e.task.status for e in self._entries.values())

    def rebuild_view(self) -> list[tuple[Task, int, float | None]]:
        """(task, registration number, retry_at) of every unfinished task, in order.

        Call it while holding :meth:`locked` so that no change slips in between.
        """
        return [
            (e.task, e.seq, e.retry_at)
            for e in self._entries.values()
            if e.task.status not in TERMINAL
        ]

    def locked(self) -> YieldingLock:
        return self._lock

    def task(self, task_id: str) -> Task:
        """The live record (read-only for the caller)."""
        return self._entries[task_id].task

    def seq(self, task_id: str) -> int:
        return self._entries[task_id].seq

    # -- slots ----------------------------------------------------------------------------

    def has_slot(self, executor: str, capacity: int) -> bool:
        return self._busy_total < self.max_concurrent and self._busy[executor] < capacity

    def busy(self, executor: str | None = None) -> int:
        return self._busy_total if executor is None else self._busy[executor]

    def abandoned(self) -> Counter[str]:
        """Per executor: slots still held by work whose attempt has already ended.

        A thread stuck in a C call when its attempt timed out or was cancelled keeps its
        slot until the call returns; queued work waits for that slot. O(tasks).
        """
        with self._lock:
            running = Counter(
                e.task.executor for e in self._entries.values() if e.attempt is not None
            )
            return Counter(
                {
                    name: busy - running[name]
                    for name, busy in self._busy.items()
                    if busy > running[name]
                }
            )

    def release(self, attempt: Attempt) -> None:
        """The attempt's work has really returned: give its slot back (once)."""
        if attempt.released:  # only ever goes from False to True
            return
        with self._lock:
            idle = self._release_locked(attempt)
        for future in idle:
            future.set_result(None)

    def _release_locked(self, attempt: Attempt) -> list[concurrent.futures.Future[None]]:
        """Under the lock: free the attempt's slot once; the when_idle futures now due."""
        if attempt.released:
            return []
        attempt.released = True
        self._busy[attempt.executor] -= 1
        self._busy_total -= 1
        if self._busy_total:
            return []
        idle, self._idle = self._idle, []
        return idle

    def when_idle(self) -> concurrent.futures.Future[None]:
        """A future that is done once no attempt's work is running any more."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if self._busy_total:
                self._idle.append(future)
                return future
        future.set_result(None)
        return future

    # -- transitions ----------------------------------------------------------------------

    def mark_ready(self, task_id: str) -> bool:
        """WAITING -> PENDING once every dependency completed; False if it is not WAITING."""
        with self._lock:
            task = self._entries[task_id].task
            if task.status is TaskStatus.PENDING:
                return True
            if task.status is not TaskStatus.WAITING:
                return False
            self._move(task, TaskStatus.PENDING)
            return True

    def retry_at(self, task_id: str) -> float | None:
        """When a task waiting to be retried may start again (None: it is not waiting)."""
        return self._entries[task_id].retry_at

    def needs_settling(self, task_id: str) -> bool:
        """Whether the dependency graph must hear that this task left RUNNING.

        It must for a task waiting to be retried (to arm the timer) and for one that
        others depend on (to wake or fail them). Read after the change: a dependent
        registered later sees the task already finished and needs no notice.
        """
        entry = self._entries[task_id]
        return entry.dependents > 0 or entry.task.status is TaskStatus.PENDING

    def retry_ready(self, task_id: str, attempt: int) -> bool:
        """The retry delay after ``attempt`` has passed: the task may start again."""
        with self._lock:
            entry = self._entries[task_id]
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
        """PENDING -> RUNNING and take a slot; None if the task is no longer PENDING.

        The caller announces the attempt (:meth:`announce`) before it runs, outside any
        lock of its own: this one is on the hot path of every attempt.
        """
        with self._lock:
            entry = self._entries[task_id]
            task = entry.task
            if task.status is not TaskStatus.PENDING or entry.retry_at is not None:
                return None
            self._move(task, TaskStatus.RUNNING)
            task.attempt += 1
            if task.started_at is None:
                task.started_at = _now()
            attempt = entry.attempt = Attempt(task, task.attempt, task.executor, self)
            self._busy[task.executor] += 1
            self._busy_total += 1
        return attempt

    def announce(self, attempt: Attempt) -> None:
        """Log and emit TaskStarted for an attempt that :meth:`begin_attempt` began."""
        task = attempt.task
        _log.info("task.started", task_id=task.task_id, name=task.name, attempt=attempt.number)
        self._emit(messages.TaskStarted(task.task_id, task.name, attempt.number))

    def undo_attempt(self, attempt: Attempt) -> None:
        """The attempt could not be handed to its executor: back to PENDING, slot freed."""
        with self._lock:
            entry = self._entries[attempt.task_id]
            if entry.attempt is attempt and entry.task.status is TaskStatus.RUNNING:
                self._move(entry.task, TaskStatus.PENDING)
                entry.task.attempt -= 1
                entry.attempt = None
        self.release(attempt)

    def complete(self, attempt: Attempt, result: Any, *, release: bool = False) -> bool:
        """RUNNING -> COMPLETED with ``result``; False if the attempt already ended.

        ``release``: the work has returned, free the slot too (either way), under the
        same acquisition of the lock (this is every successful attempt's path).
        """
        with self._lock:
            idle = self._release_locked(attempt) if release else []
            entry = self._entries[attempt.task_id]
            task = entry.task
            ended = entry.attempt is attempt and task.status is TaskStatus.RUNNING
            if ended:
                self._move(task, TaskStatus.COMPLETED)
                task.result = result
                task.error = None  # a failed earlier attempt is no longer the task's error
                task.progress = 1.0
                task.completed_at = _now()
                entry.attempt = None
                future = entry.future
        for idle_future in idle:
            idle_future.set_result(None)
        if not ended:
            return False
        if future is not None:
            future.set_result(result)
        _log.info("task.completed", task_id=task.task_id, name=task.name, attempt=attempt.number)
        self._emit(messages.TaskSucceeded(task.task_id, result))
        return True

    def fail_attempt(
        self, attempt: Attempt, error: TaskError, retry_delay: Callable[[int], float] | None
    ) -> float | bool | None:
        """End a running attempt with ``error``.

        With ``retry_delay`` and retries left, the task goes back to PENDING and the delay
        before its next attempt is returned. Otherwise it ends FAILED (True). False if the
        attempt had already ended (the other outcome won the race).
        """
        with self._lock:
            entry = self._entries[attempt.task_id]
            task = entry.task
            if entry.attempt is not attempt or task.status is not TaskStatus.RUNNING:
                return False
            entry.attempt = None
            task.error = error
            if retry_delay is not None and task.retry_count < task.max_retries:
                task.retry_count += 1
                delay = retry_delay(task.retry_count)
                entry.retry_at = self._clock() + delay
                self._move(task, TaskStatus.PENDING)
                retrying = True
            else:
                self._move(task, TaskStatus.FAILED)
                task.completed_at = _now()
                retrying = False
            future = entry.future
        if retrying:
            _log.info(
                "task.retrying",
                task_id=task.task_id,
                name=task.name,
                attempt=attempt.number,
                delay=delay,
                error=str(error),
            )
            self._emit(messages.TaskRetrying(task.task_id, attempt.number, delay, str(error)))
            return delay
        self._finish_failed(entry, attempt.number, future)
        return True

    def fail_dependency(self, task_id: str, dependency: str) -> bool:
        """WAITING/PENDING -> FAILED because ``dependency`` failed or was cancelled."""
        with self._lock:
            entry = self._entries[task_id]
            task = entry.task
            if task.status not in (TaskStatus.WAITING, TaskStatus.PENDING):
                return False
            dep_status = self._entries[dependency].task.status
            task.error = TaskDependencyError(
                f"task {task_id} cannot run: its dependency {dependency} is {dep_status.name}",
                task_id,
                {"dependency": dependency, "dependency_status": dep_status.name},
            )
            self._move(task, TaskStatus.FAILED)
            task.completed_at = _now()
            future = entry.future
        self._finish_failed(entry, task.attempt, future)
        return True

    def cancel(self, task_id: str) -> tuple[bool, Attempt | None]:
        """End an unfinished task CANCELLED.

        Returns (True, the running attempt or None) if this call cancelled it; the caller
        interrupts the attempt. (False, None) if the task had already finished.
        """
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(f"no task with id {task_id!r}", task_id)
            task = entry.task
            if task.status in TERMINAL:
                return False, None
            attempt, entry.attempt = entry.attempt, None
            if attempt is not None:
                attempt.cancelled.set()
            task.error = TaskCancellationError(f"task {task_id} was cancelled", task_id)
            self._move(task, TaskStatus.CANCELLED)
            task.completed_at = _now()
            future = entry.future
        self._finish_failed(entry, task.attempt, future)
        return True, attempt

    def report_progress(self, task_id: str, attempt: int, fraction: float, message: str) -> None:
        with self._lock:
            task = self._entries[task_id].task
            if task.attempt != attempt or task.status is not TaskStatus.RUNNING:
                return  # a late report from an attempt that already ended
            task.progress, task.progress_message = fraction, message
        self._emit(messages.TaskProgress(task_id, attempt, fraction, message))

    def _move(self, task: Task, new: TaskStatus) -> None:
        check_transition(task.task_id, task.status, new)
        task.status = new

    def _finish_failed(
        self, entry: _Entry, attempt: int, future: concurrent.futures.Future[Any] | None
    ) -> None:
        """After a task ended FAILED or CANCELLED: ``future`` is the one taken under the lock."""
        task = entry.task
        error = task.error
        assert error is not None
        if future is not None:
            future.set_exception(error)
        event = "task.cancelled" if task.status is TaskStatus.CANCELLED else "task.failed"
        _log.info(event, task_id=task.task_id, name=task.name, attempt=attempt, error=str(error))
        self._emit(messages.TaskFailed.from_error(error))

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s.ref != subscription.ref] + [
                subscription
            ]

    def unsubscribe(self, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s.ref != ref]

    def _emit(self, event: messages.TaskEvent) -> None:
        subscriptions = self._subscriptions  # replaced, never mutated: safe to read
        if not subscriptions:
            return
        for sub in subscriptions:
            if sub.task_ids is None or event.task_id in sub.task_ids:
                try:
                    sub.ref.tell(event)
                except pykka.ActorDeadError:
                    # A restarted subscriber is a new actor with a new ref: it subscribes
                    # again from its on_start (see Subscribe).
                    _log.info("task.subscriber_dropped", subscriber=str(sub.ref), reason="dead")
                    self.unsubscribe(sub.ref)
                except Exception as error:  # noqa: BLE001 - a subscriber never breaks a task
                    _log.warning(
                        "task.subscriber_failed", subscriber=str(sub.ref), error=repr(error)
                    )
                    self.unsubscribe(sub.ref)
