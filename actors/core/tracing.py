"""The hook through which an instrumentation (``actors.otel``) watches every attempt.

``observer`` is None unless an instrumentation is on, and the attempt path then does
nothing else. Every call into an instrumentation goes through the guards here, so it can
never change or stall a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from actors.errors import TaskError
from supervision._log import get_logger

if TYPE_CHECKING:
    from actors.core.attempt import Attempt

__all__ = [
    "AttemptObserver",
    "Observation",
    "carrier",
    "ended",
    "joined",
    "observer",
    "reset_warnings",
    "watching",
]

_log = get_logger("actors")


class Observation(Protocol):
    """What watches one attempt, until it ends."""

    def ended(self, error: TaskError | None, retry_delay: float | None = None) -> None:
        """The attempt ended: well (``error`` None) or with ``error``; ``retry_delay``: a
        retry follows after that many seconds. Called once by whoever ended the attempt
        (the thread that ran it, the timer thread for a timeout, a canceller), and perhaps
        once more by the thread that ran it if it lost that race: only the first counts.
        """


class AttemptObserver(Protocol):
    def started(self, attempt: Attempt) -> AbstractContextManager[object]:
        """Watch ``attempt`` (set ``attempt.observed``); the context manager returned is
        entered around the call of the task's function (on the thread or loop that runs
        it, in the attempt's context) and must not swallow what the call raises."""

    def carrier(self, attempt: Attempt) -> dict[str, str] | None:
        """The attempt's trace context as text headers (W3C ``traceparent``), for work
        that runs in another process: the worker joins its spans to the attempt's."""

    def headers(self) -> dict[str, str] | None:
        """The current context's trace as text headers (W3C ``traceparent``), or None:
        a journal keeps a task's registering context so (read back after a restart)."""


observer: AttemptObserver | None = None
"""The instrumentation watching attempts, or None (set by ``ActorsInstrumentor``)."""


# The kinds of instrumentation failure already logged at warning (later ones: debug).
_warned: set[str] = set()


def reset_warnings() -> None:
    """Warn again at the next failure of each kind (an instrumentation was turned on)."""
    _warned.clear()


def _failed(where: str, task_id: str | None) -> None:
    """An instrumentation call raised (called in its ``except``): log it, never raise."""
    first = where not in _warned
    _warned.add(where)
    log = _log.warning if first else _log.debug
    log("tracing.failed", hook=where, task_id=task_id, exc_info=True)


class _Watching:
    """The observer's context manager for one attempt, guarded: what it raises is logged
    and dropped; what the task raises passes through (never swallowed)."""

    __slots__ = ("_inner", "_task_id")

    def __init__(self, watcher: AttemptObserver, attempt: Attempt) -> None:
        self._task_id = attempt.task_id
        try:
            self._inner: AbstractContextManager[object] | None = watcher.started(attempt)
        except Exception:  # noqa: BLE001 - instrumentation never changes a task
            _failed("started", self._task_id)
            self._inner = None

    def __enter__(self) -> None:
        inner = self._inner
        if inner is not None:
            try:
                inner.__enter__()
            except Exception:  # noqa: BLE001 - as above
                _failed("started", self._task_id)
                self._inner = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        inner = self._inner
        if inner is not None:
            try:
                inner.__exit__(kind, error, traceback)
            except Exception:  # noqa: BLE001 - as above
                _failed("started", self._task_id)


def watching(watcher: AttemptObserver, attempt: Attempt) -> AbstractContextManager[None]:
    """``watcher.started(attempt)``, guarded: enter it around the call of the function."""
    return _Watching(watcher, attempt)


def ended(
    observed: Observation, task_id: str, error: TaskError | None, retry_delay: float | None = None
) -> None:
    """``observed.ended(...)``, guarded (a span processor's ``on_end`` may raise)."""
    try:
        observed.ended(error, retry_delay)
    except Exception:  # noqa: BLE001 - instrumentation never stalls a task
        _failed("ended", task_id)


def carrier(watcher: AttemptObserver, attempt: Attempt) -> dict[str, str] | None:
    """``watcher.carrier(attempt)``, guarded: None if it fails (the worker's spans are
    then not joined to the attempt's)."""
    try:
        return watcher.carrier(attempt)
    except Exception:  # noqa: BLE001 - as above
        _failed("carrier", attempt.task_id)
        return None


def joined(headers: Mapping[str, str], task_id: str) -> Callable[[], None] | None:
    """In a worker: make the attempt's trace context current (guarded, as is the import
    of OpenTelemetry, which a worker may lack); what leaves it again, or None."""
    try:
        token = join_trace(headers)
    except Exception:  # noqa: BLE001 - the task runs untraced
        _failed("join", task_id)
        return None

    def leave() -> None:
        try:
            leave_trace(token)
        except Exception:  # noqa: BLE001 - as above
            _failed("join", task_id)

    return leave


def join_trace(headers: Mapping[str, str]) -> object:
    """Make the span whose context ``headers`` carry (``carrier``) the current one; returns
    the token for ``leave_trace``. Needs OpenTelemetry (imported here, not before)."""
    from opentelemetry import context, propagate

    return context.attach(propagate.extract(headers))


def leave_trace(token: object) -> None:
    from opentelemetry import context

    context.detach(token)  # type: ignore[arg-type]
