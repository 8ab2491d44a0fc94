"""Typed handles to submitted tasks: ``TaskHandle[R]``, and the submitter ``options`` returns."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from actors.core.inputs import KEEP, ResultOf
from actors.core.messages import SubmitTask
from actors.core.retention import TaskId
from actors.core.task import TERMINAL, TaskStatus
from actors.errors import TaskError

if TYPE_CHECKING:
    from actors.manager import TaskManager

__all__ = ["Submitter", "TaskHandle", "id_of", "to_marker"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)


class TaskHandle(Generic[R_co]):
    """A submitted task whose result is an ``R_co``: await it, or call ``result()``.

    Holding a handle keeps its task's record and result (the task is not forgotten past
    ``keep_finished``). A handle is accepted wherever a task id is (dependencies, waits,
    getters, cancels), and given as a task's argument it stands for its result: the task
    then depends on it and receives the result when it runs.
    """

    __slots__ = ("_manager", "id")

    def __init__(self, manager: TaskManager, task_id: TaskId) -> None:
        self._manager = manager
        self.id = task_id  # the TaskId: holding the handle holds it

    def __await__(self) -> Generator[Any, None, R_co]:
        """The result, as ``execute_task``: raises the task's TaskError if it failed."""
        result: R_co = yield from self._manager.execute_task(self.id).__await__()
        return result

    def result(self, timeout: float | None = None) -> R_co:
        """Wait (without asyncio) for the result; raises the task's TaskError, or
        TimeoutError after ``timeout`` seconds."""
        outcome: R_co = self._manager.future(self.id).result(timeout)
        return outcome

    def exception(self, timeout: float | None = None) -> TaskError | None:
        """Wait for the task's end; its error, or None if it completed."""
        error = self._manager.future(self.id).exception(timeout)
        assert error is None or isinstance(error, TaskError)
        return error

    def cancel(self) -> bool:
        """Cancel the task (``cancel_task_sync``); False if it had ended already."""
        return self._manager.cancel_task_sync(self.id)

    def done(self) -> bool:
        """Whether the task has ended (completed, failed or cancelled)."""
        return self.status in TERMINAL

    @property
    def status(self) -> TaskStatus:
        status = self._manager.get_task_status(self.id)
        assert status is not None  # held: not forgotten unless forget() was told
        return status

    @property
    def progress(self) -> tuple[float, str]:
        """The last ``(fraction, message)`` the task reported."""
        progress = self._manager.get_task_progress(self.id)
        return (0.0, "") if progress is None else progress

    @overload
    def then(self, func: Callable[[R_co], Coroutine[Any, Any, S]]) -> TaskHandle[S]: ...

    @overload
    def then(self, func: Callable[[R_co], S]) -> TaskHandle[S]: ...

    def then(self, func: Callable[[R_co], Any]) -> TaskHandle[Any]:
        """Submit ``func(result)``: it runs once this task completed, with its result."""
        return self._manager._submit(func, (self,), {}, None)

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a TaskHandle cannot be pickled ({self.id}): given as a task's argument (or "
            "inside a list, tuple or dict there) it is replaced by its result; elsewhere, "
            "pass handle.id"
        )

    def __repr__(self) -> str:
        status = self._manager.get_task_status(self.id)
        shown = "forgotten" if status is None else status.name
        return f"<TaskHandle {self.id} {shown}>"


def id_of(task: str | TaskHandle[Any]) -> str:
    """The id a task is known by, given its id or its handle."""
    return task.id if type(task) is TaskHandle else task  # type: ignore[return-value]


def to_marker(value: Any) -> Any:
    """For ``inputs.find``: a handle given as an argument becomes its ResultOf."""
    return ResultOf(str(value.id)) if type(value) is TaskHandle else KEEP


class Submitter:
    """What ``TaskManager.options(...)`` returns: ``submit`` and ``map`` with those options."""

    __slots__ = ("_manager", "_options")

    def __init__(self, manager: TaskManager, template: SubmitTask) -> None:
        self._manager = manager
        self._options = template  # a task's fields but the function and its arguments

    @overload
    def submit(
        self, func: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]: ...

    @overload
    def submit(
        self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]: ...

    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Register ``func(*args, **kwargs)`` with these options; its handle."""
        return self._manager._submit(func, args, kwargs, self._options)

    @overload
    def map(
        self, func: Callable[[T], Coroutine[Any, Any, R]], items: Iterable[T]
    ) -> list[TaskHandle[R]]: ...

    @overload
    def map(self, func: Callable[[T], R], items: Iterable[T]) -> list[TaskHandle[R]]: ...

    def map(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[TaskHandle[Any]]:
        """One task ``func(item)`` per item, with these options; their handles, in order."""
        return self._manager._map(func, items, self._options)

    def __repr__(self) -> str:
        return f"<Submitter {self._options!r}>"
