"""Attempts that run in another process: the call an executor ships, and its worker side.

An executor whose attempts run elsewhere gets a :class:`Call`; in the worker,
:func:`run_call` runs it with a :class:`TaskContext` of its own, so ``current_task()``
works there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import pickle
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.core import tracing as _tracing
from actors.core.context import CancelFlag, TaskContext, reset_current, set_current
from supervision._validate import show

__all__ = [
    "Call",
    "Done",
    "ProgressSink",
    "RemoteError",
    "WorkLetGo",
    "WorkerTimedOut",
    "check_pickles",
    "future_of",
    "run_call",
]

ProgressSink = Callable[[str, int, float, str], None]
"""Where progress reported inside a worker goes, in the manager's process:
``(task_id, attempt, fraction, message)`` (the task store's ``report_progress``)."""

Done = Callable[[Any, "BaseException | None"], None]
"""How an executor tells an attempt's end to its task actor (``Executor._start_call``):
``done(result, None)`` or ``done(None, error)``; a :class:`WorkLetGo` means the executor
let the work go (its close): the attempt is interrupted. Any other error, a
``CancelledError`` the task raised or one from a lost connection included, is the
attempt's failure, retried under the task's policy."""

# A progress message sent from a Dask worker is cut to this length: it rides the worker's
# event stream to the scheduler (DaskExecutor). The process pool sends it whole, on the
# worker's own pipe.
MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Call:
    """One attempt to run elsewhere: what it calls, and who it is (all of it pickles)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    task_id: str
    task_name: str
    attempt: int
    priority: int
    is_coroutine: bool
    timeout: float | None = None
    """The task's timeout: an executor that ``enforces_timeouts`` counts it from the
    moment a worker starts the call (not from its hand-over: it may wait in the
    backend's queue first) and then ends the attempt's future with WorkerTimedOut."""
    trace: Mapping[str, str] | None = None
    """The attempt's trace context (W3C headers) when an instrumentation traces it: the
    worker makes it current around the call, so the task's own spans join the trace."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled once per attempt: a slots dataclass's own __getstate__ calls
        # dataclasses.fields() each time.
        return (
            Call,
            (
                self.func,
                self.args,
                self.kwargs,
                self.task_id,
                self.task_name,
                self.attempt,
                self.priority,
                self.is_coroutine,
                self.timeout,
                self.trace,
            ),
        )

    @property
    def key(self) -> str:
        """Unique per attempt: ``<task name>-<task id>-<attempt>``."""
        return f"{self.task_name}-{self.task_id}-{self.attempt}"


def future_of(
    start: Callable[[Call, ProgressSink, Done], Callable[[], object]],
    call: Call,
    report: ProgressSink,
) -> concurrent.futures.Future[Any]:
    """``Executor.submit`` for an executor that implements ``_start_call``: the same
    attempt, with its end in a ``concurrent.futures.Future`` (cancelling it lets the work
    go). The task actors call ``_start_call`` itself: one future less per attempt."""
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def done(result: Any, error: BaseException | None) -> None:
        try:
            if isinstance(error, WorkLetGo):
                outcome.cancel()
            elif error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled already

    cancel = start(call, report, done)

    def let_go(settled: concurrent.futures.Future[Any]) -> None:
        if settled.cancelled():
            cancel()

    outcome.add_done_callback(let_go)
    return outcome


class WorkLetGo(Exception):  # noqa: N818 - a signal between executor and task actor
    """What an executor tells ``done`` for work it let go without an end of its own (it
    closes): the attempt is interrupted, not failed. Only the manager lets work go
    otherwise (a timeout, a cancel), and then the attempt has ended already."""


class WorkerTimedOut(Exception):  # noqa: N818 - a signal between executor and task actor
    """An executor that ``enforces_timeouts`` ends an attempt's future with this once the
    call has run ``Call.timeout`` seconds on its worker (and stops the work if it can):
    the task actor then times the attempt out as its own timer would have."""


class RemoteError(Exception):
    """Stands in for a task's exception that could not cross back from its worker (it
    does not pickle, or does not unpickle): the exception's type (its qualified name),
    its text and its worker's traceback, which ``str()`` shows as ``Type: text``."""

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        super().__init__(type_name, message, traceback)
        self.type_name, self.message, self.traceback = type_name, message, traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


def run_call(call: Call, report: Callable[[float, str], None]) -> Any:
    """Run ``call`` in this (worker) process or thread; its result, or its exception.

    ``current_task()`` gives the attempt's context; ``report`` sends its progress home.
    A coroutine function, or an awaitable a sync function returns, runs to its end on
    an event loop of its own (``asyncio.run``).
    """
    context = TaskContext(call.task_id, call.attempt, CancelFlag(), report)
    token = set_current(context)
    # Only when traced (OpenTelemetry is installed here, or the guard says it is not).
    leave = None if call.trace is None else _tracing.joined(call.trace, call.task_id)
    try:
        result = call.func(*call.args, **call.kwargs)
        if call.is_coroutine or inspect.isawaitable(result):
            result = asyncio.run(_wait_for(result))
        return result
    finally:
        if leave is not None:
            leave()
        reset_current(token)


async def _wait_for(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def check_pickles(
    func: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any] | None,
    *,
    dumps: Callable[[object], bytes] = pickle.dumps,
    hint: str = "use a module-level function and picklable arguments",
) -> None:
    """TypeError naming the first of ``func``, ``args[i]``, ``kwargs[k]`` that does not
    pickle with ``dumps`` (work for another process must: it crosses in a pickle)."""
    try:
        dumps((func, args, kwargs))
        return  # the usual case: one pickling, not one per part
    except Exception:  # noqa: BLE001 - find which part, below
        pass
    parts: list[tuple[str, object]] = [("func", func)]
    parts += [(f"args[{i}]", arg) for i, arg in enumerate(args)]
    parts += [(f"kwargs[{key!r}]", value) for key, value in (kwargs or {}).items()]
    for where, value in parts:
        try:
            dumps(value)
        except Exception as error:  # noqa: BLE001 - any failure to pickle is the answer
            raise TypeError(
                f"{where} must pickle to run in another process, got {show(value)}: "
                f"{type(error).__name__}: {error} ({hint})"
            ) from None
