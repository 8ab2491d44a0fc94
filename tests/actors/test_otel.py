"""ActorsInstrumentor: one OpenTelemetry span per attempt, in the registering trace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actors import ActorSystem, DaskExecutor, TaskManager, TaskTimeoutError, current_task
from actors.core.call import Call, run_call
from actors.otel import ActorsInstrumentor

from .conftest import WAIT, run


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """The spans ended while the instrumentor is on (exported as each span ends)."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ActorsInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        ActorsInstrumentor().uninstrument()
        provider.shutdown()


def task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("task ")]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def work(provider: TracerProvider) -> str:
    """A task that makes a span of its own: it must be a child of the attempt's span."""
    with provider.get_tracer("app").start_as_current_span("inner work"):
        return "done"


async def async_work(provider: TracerProvider) -> str:
    with provider.get_tracer("app").start_as_current_span("inner async work"):
        await asyncio.sleep(0)
        return "done"


def boom() -> None:
    raise ValueError("boom")


def flaky() -> str:
    if current_task().attempt == 1:
        raise ConnectionError("reset by peer")
    return "ok"


@pytest.mark.parametrize("executor", ["thread_pool", "sequential", "async"])
def test_a_span_per_attempt_under_the_registering_span(
    tm: TaskManager,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    executor: str,
) -> None:
    func = async_work if executor == "async" else work
    with provider.get_tracer("app").start_as_current_span("request") as request:
        task_id = tm.register_task("fetch page", func, provider, executor_type=executor)
    # Run after the request's span ended, on another thread: the parent still holds.
    assert tm.future(task_id).result(timeout=WAIT) == "done"

    (span,) = task_spans(spans)
    assert span.name == "task fetch page"
    assert dict(span.attributes or {}) == {
        "task.id": task_id,
        "task.name": "fetch page",
        "task.attempt": 1,
        "task.executor": executor,
    }
    request_context = request.get_span_context()
    assert span.context is not None
    assert span.parent is not None
    assert span.context.trace_id == request_context.trace_id
    assert span.parent.span_id == request_context.span_id
    assert span.status.status_code is StatusCode.UNSET
    inner = one(spans, "inner async work" if executor == "async" else "inner work")
    assert inner.parent is not None
    assert inner.parent.span_id == span.context.span_id


def span_seen_in_the_worker() -> tuple[int, int, int]:
    """(pid, trace id, span id) of the span current inside the worker process."""
    context = trace.get_current_span().get_span_context()
    return os.getpid(), context.trace_id, context.span_id


@pytest.mark.slow  # worker processes
def test_an_attempt_in_a_worker_process_is_a_span_of_the_registering_trace(
    tm: TaskManager, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    # The span covers the attempt as the manager sees it (handed to the worker until its
    # outcome is back), and its context travels with the call: in the worker, it is the
    # current span, so spans the task's code makes there are its children.
    with provider.get_tracer("app").start_as_current_span("request") as request:
        good = tm.register_task("sum", sum, [1, 2], executor_type="process")
        bad = tm.register_task("divide", divmod, 1, 0, executor_type="process")
    assert tm.future(good).result(timeout=60) == 3
    assert tm.future(bad).exception(timeout=60) is not None
    by_name = {s.name: s for s in task_spans(spans)}
    assert set(by_name) == {"task sum", "task divide"}
    assert dict(by_name["task sum"].attributes or {}) == {
        "task.id": good,
        "task.name": "sum",
        "task.attempt": 1,
        "task.executor": "process",
    }
    for span in by_name.values():
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
    assert by_name["task sum"].status.status_code is StatusCode.UNSET
    assert by_name["task divide"].status.status_code is StatusCode.ERROR

    seen = tm.register_task("look", span_seen_in_the_worker, executor_type="process")
    pid, trace_id, span_id = tm.future(seen).result(timeout=60)
    assert pid != os.getpid()
    attempt_span = one(spans, "task look").get_span_context()
    assert (trace_id, span_id) == (attempt_span.trace_id, attempt_span.span_id)


def test_coroutine_tasks_on_the_application_loop_join_its_trace(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async def main() -> None:
        async with TaskManager() as tm:
            with provider.get_tracer("app").start_as_current_span("handler"):
                first = tm.register_task("first", async_work, provider)
                second = tm.register_task("second", work, provider, dependencies=[first])
            await tm.execute_task(second)

    run(main())
    handler = one(spans, "handler").get_span_context()
    by_name = {s.name: s for s in task_spans(spans)}
    assert set(by_name) == {"task first", "task second"}
    for span in by_name.values():
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == handler.trace_id
        assert span.parent.span_id == handler.span_id


def test_a_failure_records_the_exception_and_sets_error(
    tm: TaskManager, spans: InMemorySpanExporter
) -> None:
    task_id = tm.register_task("broken", boom)
    assert tm.future(task_id).exception(timeout=WAIT) is not None
    (span,) = task_spans(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    (event,) = span.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "boom"
    assert "in boom" in str(attributes["exception.stacktrace"])  # the task's own traceback


def test_a_retry_is_an_event_on_the_failed_attempt(
    tm: TaskManager, spans: InMemorySpanExporter
) -> None:
    task_id = tm.register_task("flaky", flaky, max_retries=1, retry_delay=0.01)
    assert tm.future(task_id).result(timeout=WAIT) == "ok"
    first, second = sorted(task_spans(spans), key=lambda s: s.attributes["task.attempt"])  # type: ignore[index]
    assert [first.name, second.name] == ["task flaky", "task flaky"]
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception", "retry"]
    retry = dict(first.events[1].attributes or {})
    assert retry["task.attempt"] == 1
    assert retry["task.retry_delay"] == pytest.approx(0.01)
    assert retry["exception.type"] == "ConnectionError"
    assert second.status.status_code is StatusCode.UNSET
    assert not second.events
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id != second.context.trace_id  # no registering span: roots


def test_a_timeout_ends_the_span_with_the_timeout_error(
    tm: TaskManager, spans: InMemorySpanExporter
) -> None:
    never = threading.Event()
    try:
        task_id = tm.register_task("stuck", never.wait, WAIT, timeout=0.05)
        error = tm.future(task_id).exception(timeout=WAIT)
        assert isinstance(error, TaskTimeoutError)
        # Ended by the timer, while the function was still running.
        (span,) = task_spans(spans)
    finally:
        never.set()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None
    assert span.status.description.startswith("TaskTimeoutError: task 'stuck'")
    assert dict(span.events[0].attributes or {})["exception.type"] == (
        "actors.errors.TaskTimeoutError"
    )


def test_a_cancelled_running_attempt_ends_its_span(
    tm: TaskManager, spans: InMemorySpanExporter
) -> None:
    entered, leave = threading.Event(), threading.Event()

    def held() -> None:
        entered.set()
        leave.wait(WAIT)

    task_id = tm.register_task("held", held)
    tm.start_sync()
    try:
        assert entered.wait(WAIT)
        assert tm.cancel_task_sync(task_id)
        (span,) = task_spans(spans)
    finally:
        leave.set()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.events[0].attributes or {})["exception.type"] == (
        "actors.errors.TaskCancellationError"
    )


def test_uninstrumented_attempts_make_no_spans(
    tm: TaskManager, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    ActorsInstrumentor().uninstrument()
    try:
        task_id = tm.register_task("quiet", work, provider)
        assert tm.future(task_id).result(timeout=WAIT) == "done"
        assert [s.name for s in spans.get_finished_spans()] == ["inner work"]
    finally:
        ActorsInstrumentor().instrument(tracer_provider=provider)


def test_the_global_provider_is_the_default() -> None:
    instrumentor = ActorsInstrumentor()
    instrumentor.instrument()
    try:
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | TracerProvider)


def test_importing_actors_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, actors\n"
        "with actors.TaskManager() as tm:\n"
        "    assert tm.future(tm.register_task('t', abs, -1)).result(timeout=5) == 1\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


class RaisingProcessor(SpanProcessor):
    """A span processor that raises in ``on_start`` or ``on_end``, as a buggy one might."""

    def __init__(self, hook: str) -> None:
        self.hook = hook

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.hook == "on_start":
            raise RuntimeError("processor broke in on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.hook == "on_end":
            raise RuntimeError("processor broke in on_end")


async def async_double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


def double(value: int) -> int:
    return value * 2


@pytest.mark.parametrize("hook", ["on_start", "on_end"])
@pytest.mark.parametrize(
    "executor", ["async", "thread_pool", pytest.param("process", marks=pytest.mark.slow)]
)
def test_a_raising_span_processor_changes_and_stalls_no_task(
    make_manager: Callable[..., TaskManager],
    log_events: list[dict[str, Any]],
    hook: str,
    executor: str,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(RaisingProcessor(hook))
    ActorsInstrumentor().instrument(tracer_provider=provider)
    try:
        tm = make_manager(max_concurrent_tasks=4)
        func = async_double if executor == "async" else double
        ids = [tm.register_task(f"t{i}", func, i, executor_type=executor) for i in range(20)]
        assert [tm.future(i).result(timeout=60) for i in ids] == [i * 2 for i in range(20)]
    finally:
        ActorsInstrumentor().uninstrument()
    failures = [e for e in log_events if e["event"] == "tracing.failed"]
    assert [e["level"] for e in failures].count("warning") == 1  # once; the rest at debug
    assert failures[0]["hook"] == ("started" if hook == "on_start" else "ended")


class RaisingPropagator(TraceContextTextMapPropagator):
    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        raise RuntimeError("propagator broke")


def test_a_worker_whose_trace_cannot_be_joined_runs_the_call_untraced(
    log_events: list[dict[str, Any]],
) -> None:
    # What a process or Dask worker runs: the trace headers travel with the call.
    call = Call(double, (21,), {}, "t", "double", 1, 2, False, None, {"traceparent": "x"})
    propagate.set_global_textmap(RaisingPropagator())
    try:
        assert run_call(call, lambda fraction, message: None) == 42
    finally:
        propagate.set_global_textmap(TraceContextTextMapPropagator())
    (failure,) = [e for e in log_events if e["event"] == "tracing.failed"]
    assert (failure["hook"], failure["level"]) == ("join", "warning")


@pytest.mark.parametrize("hook", ["on_start", "on_end"])
def test_a_raising_span_processor_changes_and_stalls_no_dask_task(
    log_events: list[dict[str, Any]], hook: str
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(RaisingProcessor(hook))
    executor = DaskExecutor(
        name="dask", processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
    )
    tm = TaskManager(system=ActorSystem(executors=[executor]))
    ActorsInstrumentor().instrument(tracer_provider=provider)
    try:
        tm.start_sync()
        ids = [tm.register_task(f"t{i}", double, i, executor_type="dask") for i in range(20)]
        assert [tm.future(i).result(timeout=60) for i in ids] == [i * 2 for i in range(20)]
    finally:
        ActorsInstrumentor().uninstrument()
        tm.stop_sync()
        tm.system.shutdown()
    failures = [e for e in log_events if e["event"] == "tracing.failed"]
    assert [e["level"] for e in failures].count("warning") == 1


class FailingExporter(SpanExporter):
    """An exporter that raises, or blocks until released (a collector that is down)."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.release = release

    def export(self, spans: Any) -> SpanExportResult:
        if self.release is None:
            raise ConnectionError("collector is down")
        self.release.wait(WAIT)
        return SpanExportResult.SUCCESS


@pytest.mark.parametrize("blocks", [False, True])
def test_an_exporter_that_raises_or_blocks_changes_no_task(
    make_manager: Callable[..., TaskManager], blocks: bool
) -> None:
    release = threading.Event()
    provider = TracerProvider()
    exporter = FailingExporter(release if blocks else None)
    # A blocking exporter stalls only the processor's own thread (as BatchSpanProcessor
    # exports); one that raises is caught by the SDK's processor.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=1)
        if blocks
        else SimpleSpanProcessor(exporter)
    )
    ActorsInstrumentor().instrument(tracer_provider=provider)
    try:
        tm = make_manager(max_concurrent_tasks=4)
        ids = [tm.register_task(f"t{i}", double, i) for i in range(20)]
        assert [tm.future(i).result(timeout=WAIT) for i in ids] == [i * 2 for i in range(20)]
    finally:
        ActorsInstrumentor().uninstrument()
        release.set()
        provider.shutdown()
