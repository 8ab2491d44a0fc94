"""OpenTelemetry tracing of task attempts: one span per attempt, in the registering trace.

Needs the ``otel`` extra. Only this module imports OpenTelemetry; with the instrumentor
off, an attempt pays one attribute read (see :mod:`actors.core.tracing`).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.trace import Span, Status, StatusCode

from actors.core import tracing as _tracing
from actors.core.attempt import Attempt
from actors.errors import TaskError, TaskExecutionError

__all__ = ["ActorsInstrumentor"]

_SCOPE = "actors.otel"


class _AttemptSpan:
    """One attempt's span: ended once, by whoever ends the attempt first."""

    __slots__ = ("_once", "number", "span")

    def __init__(self, number: int, span: Span) -> None:
        self.number = number  # the attempt's (not the attempt: no reference cycle)
        self.span = span
        # Acquired once and never released: a test-and-set that the timer thread (a
        # timeout) and the attempt's own thread (its late result) may race on.
        self._once = threading.Lock()

    def ended(self, error: TaskError | None, retry_delay: float | None = None) -> None:
        if not self._once.acquire(blocking=False):
            return
        span = self.span
        if error is not None:
            raised: BaseException = error
            if isinstance(error, TaskExecutionError) and error.original_error is not None:
                raised = error.original_error  # what the task raised, with its traceback
            span.record_exception(raised)
            if retry_delay is not None:
                span.add_event(
                    "retry",
                    {
                        "task.attempt": self.number,
                        "task.retry_delay": retry_delay,
                        "exception.type": _type_name(raised),
                        "exception.message": str(raised),
                    },
                )
            span.set_status(Status(StatusCode.ERROR, f"{type(raised).__name__}: {raised}"))
        span.end()


def _type_name(error: BaseException) -> str:
    """As OpenTelemetry's SDK names an exception's type in its ``exception`` event."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


class _SpanObserver:
    """Starts an attempt's span on the thread or loop that runs it (see actors.core.tracing)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def started(self, attempt: Attempt) -> AbstractContextManager[object]:
        task = attempt.task
        # The current context is a copy of the registering one: its span is the parent.
        span = self.tracer.start_span(
            f"task {task.name}",
            attributes={
                "task.id": task.task_id,
                "task.name": task.name,
                "task.attempt": attempt.number,
                "task.executor": attempt.executor,
            },
        )
        attempt.observed = _AttemptSpan(attempt.number, span)
        # Current while the function runs; recording and ending are the store's part.
        return trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def carrier(self, attempt: Attempt) -> dict[str, str] | None:
        observed = attempt.observed
        if not isinstance(observed, _AttemptSpan):
            return None
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(observed.span))
        return headers

    def headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        return headers or None


class ActorsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """OpenTelemetry's instrumentor for task attempts (``BaseInstrumentor``'s shape).

    ``instrument(tracer_provider=None)`` turns tracing on (None: OpenTelemetry's global
    provider), ``uninstrument()`` off; attempts that started while it was on still end
    their spans. As every ``BaseInstrumentor``, it is one instance per process.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider")
        tracer = trace.get_tracer(_SCOPE, tracer_provider=provider)
        _tracing.reset_warnings()
        _tracing.observer = _SpanObserver(tracer)

    def _uninstrument(self, **kwargs: Any) -> None:
        _tracing.observer = None
