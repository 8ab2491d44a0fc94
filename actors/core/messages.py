"""The scheduler actor's message protocol: what it accepts and the events it emits.

Requests go to ``system.scheduler`` with ``ask`` or ``tell``; events go to subscribers as
tells. A TaskFailed's kind maps one-to-one to a TaskError subclass (``to_error()``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pykka

from actors.core.task import TaskPriority
from actors.errors import (
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskExecutionError,
    TaskTimeoutError,
)

if TYPE_CHECKING:
    from actors.core.executor import Executor

__all__ = [
    "CancelTask",
    "FailureKind",
    "GetStatus",
    "GetTask",
    "Pause",
    "Start",
    "SubmitTask",
    "Subscribe",
    "TaskEvent",
    "TaskFailed",
    "TaskProgress",
    "TaskRetrying",
    "TaskStarted",
    "TaskSucceeded",
    "Unsubscribe",
]


# -- requests the scheduler accepts ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitTask:
    """Register a task. ``ask`` answers with its id, or raises the input error.

    The one home of a task's submitted fields and their defaults: ``register_task``,
    ``ActorSystem.submit``/``register``, ``build_task`` and the compat layers all pass
    this object; derive a variant with ``dataclasses.replace``. Fields are checked when
    it is registered (``build_task``), not when it is made.

    ``executor`` is "auto", "async", "thread_pool", "sequential", the name of an
    executor added to the system, or an Executor.
    """

    name: str
    func: Callable[..., Any]
    args: Iterable[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    priority: TaskPriority | int = TaskPriority.NORMAL
    dependencies: Iterable[str] = ()
    max_retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    task_id: str | None = None
    description: str = ""
    tags: Iterable[str] = ()
    metadata: Mapping[str, Any] | None = None
    executor: str | Executor = "auto"
    key: str | None = None
    """An idempotency key: a key already known answers with its task's id."""
    delay: float | timedelta | None = None
    """Seconds (or a timedelta) from registration before the task may start: it is
    WAITING until then, holding no slot. Kept in the journal: a restart does not run it
    early."""
    not_before: datetime | None = None
    """The moment before which the task does not start (a naive datetime is local time,
    as ``datetime.timestamp`` reads it); at most one of ``delay`` and ``not_before``."""
    limit_key: str | None = None
    """The flow-control key (a host, a tenant): ``TaskManager.limit`` bounds how many
    attempts of one key run at once and how fast they start."""
    resources: Mapping[str, int] | None = None
    """Units of the system's resources each attempt holds while it runs (``{"gpu": 1}``)."""


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel a task. ``ask`` answers True if the task ended CANCELLED because of it."""

    task_id: str


@dataclass(frozen=True, slots=True)
class GetTask:
    """``ask`` answers with a snapshot of the Task, or None for an unknown id."""

    task_id: str


@dataclass(frozen=True, slots=True)
class GetStatus:
    """``ask`` answers with the TaskStatus, or None for an unknown id."""

    task_id: str


@dataclass(frozen=True, slots=True)
class Start:
    """Start running registered tasks (the scheduler starts paused)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Start no new attempts; running ones go on."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send the task events to ``subscriber`` (as tells); ``task_ids`` limits them.

    One task's events arrive in order; events of different tasks may interleave, as they
    are told from the threads that run the tasks. A subscription belongs to one actor: a
    subscriber that stops is dropped (``task.subscriber_dropped``), and one restarted by
    its supervisor is a new actor, so a supervised subscriber sends Subscribe from its own
    ``on_start`` (``system.scheduler.tell(Subscribe(self.actor_ref))``).
    """

    subscriber: pykka.ActorRef[Any]
    task_ids: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    subscriber: pykka.ActorRef[Any]


# -- events the scheduler emits ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskStarted:
    task_id: str
    name: str
    attempt: int
    limit_key: str | None = None
    """The task's flow-control key, if it has one (its start counted against its limits)."""


@dataclass(frozen=True, slots=True)
class TaskProgress:
    task_id: str
    attempt: int
    fraction: float
    message: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class TaskRetrying:
    """Attempt ``attempt`` failed with ``error``; attempt ``attempt + 1`` starts after ``delay``."""

    task_id: str
    attempt: int
    delay: float
    error: str
    name: str = ""
    error_type: str = ""
    """The type of what the attempt raised (``ConnectionError``), or of the TaskError that
    ended it (``TaskTimeoutError``)."""


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    task_id: str
    result: Any
    name: str = ""
    attempt: int = 0


class FailureKind(enum.Enum):
    """How a task ended badly; each kind is one TaskError subclass."""

    EXECUTION = "execution"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    DEPENDENCY = "dependency"


_ERROR_OF_KIND: dict[FailureKind, type[TaskError]] = {
    FailureKind.EXECUTION: TaskExecutionError,
    FailureKind.TIMEOUT: TaskTimeoutError,
    FailureKind.CANCELLED: TaskCancellationError,
    FailureKind.DEPENDENCY: TaskDependencyError,
}
_KIND_OF_ERROR = {error: kind for kind, error in _ERROR_OF_KIND.items()}


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """The task ended FAILED or CANCELLED; ``to_error()`` is the TaskError it ended with."""

    task_id: str
    kind: FailureKind
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    original_error: BaseException | None = None
    name: str = ""
    attempt: int = 0
    """The last attempt's number; 0 if the task never started (a dependency failed, or it
    was cancelled while it waited)."""

    @classmethod
    def from_error(cls, error: TaskError, name: str = "", attempt: int = 0) -> TaskFailed:
        """The message for ``error`` (one of the four kinds of task failure)."""
        kind = _KIND_OF_ERROR.get(type(error))
        if kind is None:
            raise TypeError(f"{type(error).__name__} is not a kind of task failure")
        original = error.original_error if isinstance(error, TaskExecutionError) else None
        return cls(
            error.task_id or "", kind, error.message, dict(error.details), original, name, attempt
        )

    @property
    def error_type(self) -> str:
        """The type of what the task raised, or of the TaskError it ended with."""
        if self.original_error is not None:
            return type(self.original_error).__name__
        return _ERROR_OF_KIND[self.kind].__name__

    def to_error(self) -> TaskError:
        error_type = _ERROR_OF_KIND[self.kind]
        if error_type is TaskExecutionError:
            return TaskExecutionError(
                self.message, self.task_id, self.details, original_error=self.original_error
            )
        return error_type(self.message, self.task_id, self.details)


TaskEvent = TaskStarted | TaskProgress | TaskRetrying | TaskSucceeded | TaskFailed
"""Any of the events a subscriber receives. Each names its task (``task_id``, ``name``)
and its attempt."""
