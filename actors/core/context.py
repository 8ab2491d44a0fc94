"""What a running attempt knows about itself: ``current_task()`` and its TaskContext."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, Protocol, TypeVar, final

from actors.errors import TaskCancellationError
from supervision._validate import check_number, check_text

__all__ = ["CancelFlag", "Interrupted", "TaskContext", "current_task", "here", "shielded"]

P = ParamSpec("P")
R = TypeVar("R")

_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("actors_current_task")


class Interrupted(BaseException):
    """Raised in a worker thread whose attempt timed out or was cancelled.

    A BaseException so that the task's own ``except Exception`` does not swallow it.
    """


class Interruptible(Protocol):
    """An attempt as its thread's library calls see it (actors.core.attempt.Attempt)."""

    def shield(self) -> None: ...

    def unshield(self) -> None: ...

    def wait_woken_by(self, waker: Callable[[], object] | None) -> bool: ...

    @property
    def interrupt_owed(self) -> bool: ...


class _Here(threading.local):
    attempt: Interruptible | None = None
    """The attempt whose work this thread runs now, while it may be interrupted."""


here = _Here()


def shielded(method: Callable[P, R]) -> Callable[P, R]:
    """Mark a library entry point: an interrupt of the calling task's thread never lands
    inside it, it is raised when the call returns (tests/actors/test_interrupts.py)."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        attempt = here.attempt
        if attempt is None:  # not on an interruptible task's thread: most calls
            return method(*args, **kwargs)
        attempt.shield()
        try:
            return method(*args, **kwargs)
        finally:
            attempt.unshield()

    return call


@final
class CancelFlag:
    """Set once, read from any thread: cheaper than a threading.Event nobody waits on."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True  # one attribute store: atomic under the GIL

    def is_set(self) -> bool:
        return self._set


@final
class TaskContext:
    """The running attempt of a task, as the task's own code sees it.

    Only the library creates these; get the current one with :func:`current_task`. Safe
    to use from the attempt's thread and from any thread it hands work to.
    """

    __slots__ = ("_cancelled", "_on_wait", "_report", "attempt", "task_id")

    def __init__(
        self,
        task_id: str,
        attempt: int,
        cancelled: CancelFlag,
        report: Callable[[float, str], None],
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self._cancelled = cancelled
        self._report = report
        self._on_wait: Callable[[bool], None] | None = None
        """Set by the task actor: told True when the task starts waiting for another
        task, False when it stops (its slot is given back meanwhile)."""

    @property
    def cancelled(self) -> bool:
        """True once the task has been cancelled; stop working and return soon."""
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise TaskCancellationError if the task has been cancelled."""
        if self._cancelled.is_set():
            raise TaskCancellationError(f"task {self.task_id} was cancelled", self.task_id)

    @shielded
    def report_progress(self, fraction: float, message: str = "") -> None:
        """Record progress: ``fraction`` from 0.0 to 1.0 and an optional message."""
        self._report(
            check_number("fraction", fraction, minimum=0.0, maximum=1.0),
            check_text("message", message),
        )

    def shielded(self) -> contextlib.AbstractContextManager[None]:
        """A block that a timeout or cancel does not interrupt in the middle (a critical
        section of the task's own: a lock, a file written in two steps): an interrupt
        that comes meanwhile is raised as the block ends. ``cancelled`` still turns True
        at once."""
        return _Shield()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"


class _Shield:
    __slots__ = ("_attempt",)

    def __enter__(self) -> None:
        attempt = self._attempt = here.attempt
        if attempt is not None:
            attempt.shield()

    def __exit__(self, *_exc: object) -> None:
        if self._attempt is not None:
            self._attempt.unshield()


def current_task() -> TaskContext:
    """The TaskContext of the attempt running this code (in a thread or a coroutine).

    Raises:
        RuntimeError: called outside a task.
    """
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_task() called outside a running task") from None


def inside_a_task() -> bool:
    """Whether the caller runs inside a task's attempt (whose waits give its slot back)."""
    context = _current.get(None)
    return context is not None and context._on_wait is not None


@contextlib.contextmanager
def waiting_for_tasks() -> Iterator[None]:
    """Around a wait for other tasks' outcomes: inside a task, its slot is given back
    for the wait and taken again after it (Ray's rule for ``ray.get`` inside a task,
    Dask's secede/rejoin), so N parents waiting for N children on N slots finish.
    Outside a task it does nothing."""
    context = _current.get(None)
    on_wait = None if context is None else context._on_wait
    if on_wait is None:
        yield
        return
    on_wait(True)
    try:
        yield
    finally:
        on_wait(False)


def set_current(context: TaskContext) -> contextvars.Token[TaskContext]:
    return _current.set(context)


def reset_current(token: contextvars.Token[TaskContext]) -> None:
    _current.reset(token)
