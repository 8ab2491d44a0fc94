"""The task system's errors: one TaskError subclass per way a task can end badly.

Every error is picklable (the same way whichever reducer runs, ours or tblib's) and has
``to_dict()``.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import traceback
from collections.abc import Mapping
from typing import Any

__all__ = [
    "InvalidTaskStateError",
    "JournalError",
    "StandInError",
    "TaskCancellationError",
    "TaskDependencyError",
    "TaskError",
    "TaskExecutionError",
    "TaskNotFoundError",
    "TaskTimeoutError",
]


class TaskError(Exception):
    """Base of the task system's errors.

    Args:
        message: what went wrong, for people.
        task_id: the task it concerns, if any.
        details: machine-readable facts (dependency id, timeout seconds, ...).
    """

    def __init__(
        self,
        message: str,
        task_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, task_id={self.task_id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        self._links_that_pickle()
        return (type(self), (self.message, self.task_id, self.details))

    def _links_that_pickle(self) -> None:
        """Drop a ``__context__`` that does not survive a pickle: a reducer that sends it
        (tblib's) must not fail where ours, which leaves it out, succeeds."""
        context = self.__context__
        if context is not None and context is not self.__cause__ and not _round_trips(context):
            self.__context__ = None

    def to_dict(self) -> dict[str, Any]:
        """The error as plain data: type, message, task_id, details."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "task_id": self.task_id,
            "details": dict(self.details),
        }


class TaskDependencyError(TaskError):
    """A dependency is unknown, forms a cycle, or ended FAILED or CANCELLED."""


class TaskCancellationError(TaskError):
    """The task was cancelled."""


class TaskTimeoutError(TaskError):
    """An attempt ran past the task's timeout."""


class TaskNotFoundError(TaskError):
    """No task has this id."""


class InvalidTaskStateError(TaskError):
    """A state change the task's lifecycle does not allow (a bug, never a race)."""


class TaskExecutionError(TaskError):
    """The task's function raised; ``original_error`` (also ``__cause__``) is what it raised."""

    def __init__(
        self,
        message: str,
        task_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        original_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, task_id, details)
        self.original_error = original_error
        self.__cause__ = original_error

    def __reduce__(self) -> tuple[Any, ...]:
        original = self.original_error
        if original is not None and not _round_trips(original):
            original = StandInError.of(original)
            # What goes is the stand-in, as ``__cause__`` too (a reducer that pickles the
            # cause itself sends that): the copy is the same whichever reducer made it.
            self.__cause__ = original
        self._links_that_pickle()
        return (type(self), (self.message, self.task_id, self.details, original))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        original = self.original_error
        data["original_error"] = None if original is None else repr(original)
        return data


class JournalError(RuntimeError):
    """A task journal cannot be used: the file is not a journal (or is damaged), another
    live process holds it, or a write to it failed. Not a TaskError: it concerns the
    file, not a task. Raised before anything is written to the file."""


class StandInError(Exception):
    """What a TaskExecutionError carries across a pickle in place of an original error
    that does not survive one (its ``__init__`` needs other arguments, it holds a lock or
    a socket): the error's type name, message and traceback text, faithfully.

    ``str()`` reads ``"TypeName: message"``; ``type_name`` is the qualified name.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(type_name, message, traceback_text)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    @classmethod
    def of(cls, error: BaseException) -> StandInError:
        kind = type(error)
        return cls(
            f"{kind.__module__}.{kind.__qualname__}",
            str(error),
            "".join(traceback.format_exception(error)),
        )

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"

    def __repr__(self) -> str:
        return f"StandInError({self.type_name!r}, {self.message!r})"


def _round_trips(error: BaseException) -> bool:
    """Whether ``error`` comes back from a pickle (dumps can pass while loads fails), by
    its own pickling: the answer must not change once tblib's reducer is registered."""
    buffer = io.BytesIO()
    try:
        _OwnPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(error)
        pickle.loads(buffer.getvalue())
    except Exception:  # noqa: BLE001 - any failure means: send a stand-in
        return False
    return True


class _OwnPickler(pickle.Pickler):
    """Pickles exceptions as they pickle themselves, not by tblib's reducer (registered in
    ``copyreg`` for every exception class when ``distributed`` is imported; it makes some
    pickle that otherwise do not). Other reducers in ``copyreg`` still count."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException):
            reducer = copyreg.dispatch_table.get(type(obj))
            if reducer is not None and getattr(reducer, "__module__", "") == _TBLIB:
                return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        return NotImplemented


_TBLIB = "tblib.pickling_support"
