"""The hook through which an instrumentation (``actors.otel``) watches every attempt.

``observer`` is None unless an instrumentation is on: the attempt path reads it once per
attempt and, when it is None, does nothing else. Off, an attempt pays about 35 ns in all
(this read, ``Attempt.observed`` set and read once, by timeit), against some 50 us per
no-op task in examples/benchmark.py scenario 1, which stayed within its run-to-run noise.
When it is set, the task actor asks it to watch each attempt
just before the task's function is called, in the attempt's context (a copy of the one
current at ``register_task``) and on the thread or loop that runs the function; the store
then tells the attempt's :class:`Observation` how the attempt ended, where it decides that.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from actors.errors import TaskError

if TYPE_CHECKING:
    from actors._attempt import Attempt

__all__ = ["AttemptObserver", "Observation", "observer"]


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
