"""The task record, its priorities and statuses, and the lifecycle's legal transitions."""

from __future__ import annotations

import contextvars
import copy
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from actors.errors import InvalidTaskStateError, TaskError
from supervision._validate import show

__all__ = [
    "TERMINAL",
    "Task",
    "TaskPriority",
    "TaskStatus",
    "check_transition",
    "detach_metadata",
    "frozen_mapping",
    "owned_metadata",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_mapping(values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``values``: a task's kwargs and metadata never change after
    registration, so every snapshot can share them and none can alter the task."""
    return MappingProxyType(dict(values)) if values else _EMPTY


# Values nothing can change in place: metadata made only of these needs no deep copy.
_IMMUTABLE = frozenset({str, int, float, bool, complex, bytes, type(None)})


def _flat(values: Mapping[Any, Any]) -> bool:
    immutable = _IMMUTABLE
    return all(type(value) in immutable for value in values.values())


def owned_metadata(values: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    """The task's own read-only copy of ``values``, deep where a value is a container:
    what the caller changes afterwards, at any depth, never reaches the task.

    Raises:
        TypeError: a value cannot be copied (a lock, a socket), naming it.
    """
    if not values:
        return _EMPTY
    copied = dict(values)
    if not _flat(copied):
        for key, value in copied.items():
            try:
                copied[key] = copy.deepcopy(value)
            except Exception as error:  # noqa: BLE001 - any failure: it cannot be kept
                raise TypeError(
                    f"metadata[{key!r}] must be data that can be copied (the task keeps "
                    f"its own copy), got {show(value)} ({type(error).__name__}: {error})"
                ) from None
    return MappingProxyType(copied)


def detach_metadata(snapshot: Task) -> Task:
    """``snapshot`` (a fresh copy of a task) with metadata a reader may change freely:
    nested values deep-copied, so nothing done to them reaches the task. Flat metadata
    (the usual case) stays shared: it is read-only, with nothing inside to change."""
    metadata = snapshot.metadata
    if metadata and (type(metadata) is not MappingProxyType or not _flat(metadata)):
        snapshot.metadata = MappingProxyType(copy.deepcopy(dict(metadata)))
    return snapshot


class TaskPriority(enum.IntEnum):
    """Higher runs first; equal priorities run in registration order."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4


class TaskStatus(enum.Enum):
    """Where a task is in its life. COMPLETED, FAILED and CANCELLED are final."""

    PENDING = 1
    """Ready to run, waiting for a slot (also between retry attempts)."""
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5
    WAITING = 6
    """Has a dependency that has not completed yet."""

    # Members are singletons: identity hashing is correct and much cheaper than Enum's
    # hash of the name, which the scheduler's hot path pays on every status check.
    __hash__ = object.__hash__


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_LEGAL: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset({TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    # RUNNING -> PENDING is a failed attempt that will be retried.
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.PENDING}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def check_transition(task_id: str, current: TaskStatus, new: TaskStatus) -> None:
    """Raise InvalidTaskStateError unless ``current -> new`` is a legal change."""
    if new not in _LEGAL[current]:
        raise InvalidTaskStateError(
            f"task {task_id} is {current.name}; cannot become {new.name}",
            task_id,
            {"status": current.name, "requested": new.name},
        )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, eq=False)
class Task:
    """A task: what to run, how (priority, dependencies, retries, timeout), and how it went.

    The manager hands out snapshots (copies): reading one is always safe, and changing
    one changes nothing in the manager. ``kwargs`` and ``metadata`` are read-only
    mappings (copies of what was registered; a snapshot's nested metadata is its own
    deep copy), ``args``, ``tags`` and ``dependencies`` tuples. The arguments and the
    result are the objects themselves, as a future's are. Times are timezone-aware UTC
    datetimes.
    """

    task_id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    priority: TaskPriority = TaskPriority.NORMAL
    dependencies: tuple[str, ...] = ()
    max_retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    executor: str = "thread_pool"
    is_coroutine: bool = False
    """``func`` is a coroutine function (found once, at registration)."""
    context: contextvars.Context | None = field(default=None, repr=False)
    """The ``contextvars`` context current at registration: each attempt runs in a copy
    of it, as ``asyncio.create_task`` and ``asyncio.to_thread`` run theirs."""
    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    error: TaskError | None = None
    progress: float = 0.0
    progress_message: str = ""
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    retry_count: int = 0
    attempt: int = 0
    """The number of the current (or last) attempt; 0 before the first one starts."""
    not_before: datetime | None = None
    """The task does not start before this moment (``delay``/``not_before``), UTC."""
    limit_key: str | None = None
    """The flow-control key whose limits (``TaskManager.limit``) its attempts obey."""
    resources: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    """Units of the system's resources each attempt holds while it runs."""

    @property
    def done(self) -> bool:
        """True once the task is COMPLETED, FAILED or CANCELLED."""
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """The task as plain data (the function by its qualified name)."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "func": getattr(self.func, "__qualname__", repr(self.func)),
            "priority": self.priority.name,
            "dependencies": list(self.dependencies),
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "executor": self.executor,
            "status": self.status.name,
            "result": self.result,
            "error": None if self.error is None else self.error.to_dict(),
            "progress": self.progress,
            "progress_message": self.progress_message,
            "created_at": self.created_at.isoformat(),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "retry_count": self.retry_count,
            "attempt": self.attempt,
            "not_before": _iso(self.not_before),
            "limit_key": self.limit_key,
            "resources": dict(self.resources),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
