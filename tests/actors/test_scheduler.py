"""The scheduler actor: its message protocol, events, restart without loss, random DAGs."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any

import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import (
    ActorSystem,
    TaskDependencyError,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    messages,
)
from actors.core import messages as core_messages
from actors.core.protocol import Finished
from actors.core.scheduler import SchedulerActor
from actors.core.scheduling import DependencyGraph

from .conftest import WAIT, Collector


def flaky_twice() -> str:
    from actors import current_task

    if current_task().attempt < 3:
        raise RuntimeError("not yet")
    return "done"


def test_an_application_drives_the_scheduler_with_messages() -> None:
    events: queue.Queue[Any] = queue.Queue()
    with ActorSystem() as system:
        collector = system.spawn(Collector, events, name="collector")
        system.scheduler.ask(messages.Subscribe(collector), timeout=WAIT)
        ok = system.scheduler.ask(
            messages.SubmitTask("flaky", flaky_twice, max_retries=2, retry_delay=0), timeout=WAIT
        )
        bad = system.scheduler.ask(
            messages.SubmitTask("bad", int, args=("x",), dependencies=()), timeout=WAIT
        )
        assert system.scheduler.ask(messages.GetStatus(ok), timeout=WAIT) is TaskStatus.PENDING
        system.scheduler.tell(messages.Start())
        seen: dict[str, list[Any]] = {ok: [], bad: []}
        while not all(
            s and isinstance(s[-1], messages.TaskSucceeded | messages.TaskFailed)
            for s in seen.values()
        ):
            event = events.get(timeout=WAIT)
            seen[event.task_id].append(event)
        assert [type(e).__name__ for e in seen[ok]] == [
            "TaskStarted",
            "TaskRetrying",
            "TaskStarted",
            "TaskRetrying",
            "TaskStarted",
            "TaskSucceeded",
        ]
        assert [e.attempt for e in seen[ok] if isinstance(e, messages.TaskStarted)] == [1, 2, 3]
        assert seen[ok][-1].result == "done"
        failed = seen[bad][-1]
        assert isinstance(failed, messages.TaskFailed)
        assert failed.kind is messages.FailureKind.EXECUTION
        error = failed.to_error()
        assert isinstance(error, TaskExecutionError)
        assert isinstance(error.original_error, ValueError)
        task = system.scheduler.ask(messages.GetTask(ok), timeout=WAIT)
        assert (task.status, task.attempt) == (TaskStatus.COMPLETED, 3)
        # The failed attempts are history: a task that succeeded has no error.
        assert task.error is None
        assert task.to_dict()["error"] is None
        assert system.scheduler.ask(messages.CancelTask(ok), timeout=WAIT) is False


class Resubscriber(pykka.ThreadingActor):
    """A supervised subscriber that subscribes itself from on_start, as the docs advise."""

    def __init__(
        self, system: ActorSystem, events: queue.Queue[Any], started: queue.Queue[Any]
    ) -> None:
        super().__init__()
        self.system, self.events, self.started = system, events, started

    def on_start(self) -> None:
        self.system.scheduler.ask(messages.Subscribe(self.actor_ref), timeout=WAIT)
        self.started.put(self.actor_ref)

    def on_receive(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("subscriber crashed")
        self.events.put(message)


def succeeded(events: queue.Queue[Any], task_id: str) -> messages.TaskSucceeded:
    while True:
        event = events.get(timeout=WAIT)
        if isinstance(event, messages.TaskSucceeded) and event.task_id == task_id:
            return event


def test_a_restarted_subscriber_that_subscribes_on_start_keeps_getting_events(
    log_events: list[dict[str, Any]],
) -> None:
    events: queue.Queue[Any] = queue.Queue()
    started: queue.Queue[Any] = queue.Queue()
    with ActorSystem() as system:
        system.spawn(Resubscriber, system, events, started, name="subscriber")
        first = started.get(timeout=WAIT)
        system.scheduler.tell(messages.Start())
        a = system.scheduler.ask(messages.SubmitTask("a", str.upper, args=("a",)), timeout=WAIT)
        assert succeeded(events, a).result == "A"

        first.tell("crash")  # its supervisor starts a new actor, which subscribes itself
        second = started.get(timeout=WAIT)
        assert second != first
        b = system.scheduler.ask(messages.SubmitTask("b", str.upper, args=("b",)), timeout=WAIT)
        assert succeeded(events, b).result == "B"
    # The dead incarnation was dropped when an event found it gone, and that was logged.
    dropped = [e for e in log_events if e["event"] == "task.subscriber_dropped"]
    assert [e["subscriber"] for e in dropped][:1] == [str(first)]


def reports_then_fails() -> None:
    from actors import current_task

    current_task().report_progress(0.5, "half way")
    raise RuntimeError("no")


def counting(kind: type) -> Any:
    def made(event: Any, task_id: str, *args: Any, **kwargs: Any) -> None:
        BUILT.append(task_id)
        kind.__init__(event, task_id, *args, **kwargs)

    return made


BUILT: list[str] = []


def test_a_subscription_to_some_tasks_builds_no_event_for_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A dashboard watches the fifty tasks on its screen while thousands run: the others'
    # events are not even made (made and dropped, they cost a busy manager about 6% of
    # its throughput: docs/performance.md).
    BUILT.clear()
    for kind in ("TaskStarted", "TaskProgress", "TaskRetrying", "TaskSucceeded", "TaskFailed"):
        original = getattr(core_messages, kind)
        made = type(kind, (original,), {"__init__": counting(original)})
        monkeypatch.setattr(core_messages, kind, made)
    events: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()
    with TaskManager() as tm:
        first = tm.register_task("first", gate.wait, WAIT)
        watched = tm.register_task("watched", str.upper, "w", dependencies=[first])
        collector = Collector.start(events)
        try:
            subscribe = messages.Subscribe(collector, frozenset({watched}))
            tm.system.scheduler.ask(subscribe, timeout=WAIT)
            others = [
                tm.register_task("ok", str.upper, "a"),
                tm.register_task("retried", reports_then_fails, max_retries=1, retry_delay=0),
                tm.register_task("cancelled", gate.wait, WAIT, dependencies=[watched]),
            ]
            assert tm.cancel_task_sync(others[2])
            for other in others[:2]:
                tm.future(other).exception(WAIT)
            gate.set()
            assert tm.future(watched).result(WAIT) == "W"
            seen = [events.get(timeout=WAIT) for _ in range(2)]
        finally:
            collector.stop()
    assert [(type(e).__name__, e.task_id) for e in seen] == [
        ("TaskStarted", watched),
        ("TaskSucceeded", watched),
    ]
    assert set(BUILT) == {watched}


def test_the_scheduler_runs_one_message_at_a_time_on_the_threads_that_finish_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scheduler owns the graph, the ready queues and the slots with no lock: it must
    # never run on two threads at once, however many threads finish attempts together.
    inside = [0]
    overlaps: list[int] = []
    finished_on: set[str] = set()
    original = SchedulerActor._handle

    def checked(self: SchedulerActor, notices: list[Any]) -> None:
        inside[0] += 1
        if inside[0] > 1:
            overlaps.append(inside[0])
        try:
            for _ in range(20):
                time.sleep(0)  # invite another thread in, were it possible
            if any(isinstance(notice, Finished) for notice in notices):
                finished_on.add(threading.current_thread().name)
            original(self, notices)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(SchedulerActor, "_handle", checked)
    tm = TaskManager(max_concurrent_tasks=4)
    try:
        ids = [tm.register_task(f"t{n}", abs, -n) for n in range(400)]
        assert [tm.future(t).result(timeout=WAIT) for t in ids] == list(range(400))
    finally:
        tm.stop_sync(timeout=WAIT)
    assert overlaps == []
    # Hosted on the executors' threads: a finished attempt's message is handled by the
    # pool thread that finished it (no hop to a scheduler thread) most of the time.
    assert any(name.startswith("thread_pool-worker") for name in finished_on), finished_on


def test_the_scheduler_answers_bad_requests_and_lives_on() -> None:
    with ActorSystem() as system:
        scheduler = system.scheduler
        with pytest.raises(TaskDependencyError, match="unknown task 'nope'"):
            scheduler.ask(messages.SubmitTask("x", int, dependencies=("nope",)), timeout=WAIT)
        with pytest.raises(TypeError, match="does not understand"):
            scheduler.ask("hello", timeout=WAIT)
        assert scheduler.ask(messages.GetStatus("nope"), timeout=WAIT) is None
        assert system.scheduler is scheduler
        assert scheduler.is_alive()


def test_a_crashed_scheduler_is_restarted_and_loses_no_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashed = threading.Event()
    original = DependencyGraph.register

    def faulty(self: DependencyGraph, task_id: str) -> None:
        if self.store.task(task_id).name == "poison" and not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected scheduler fault")
        original(self, task_id)

    # The scheduler actor registers tasks into the graph: a fault there crashes it.
    monkeypatch.setattr(DependencyGraph, "register", faulty)
    release = threading.Event()
    tm = TaskManager(max_concurrent_tasks=2)
    try:
        tm.start_sync()
        first_scheduler = tm.system.scheduler
        blocked = tm.register_task("blocked", release.wait, WAIT)
        before = [tm.register_task(f"before-{n}", abs, -n) for n in range(5)]
        poison = tm.register_task("poison", abs, -99)
        after = [tm.register_task(f"after-{n}", abs, -n, dependencies=[poison]) for n in range(5)]
        assert crashed.wait(WAIT)
        release.set()
        assert [tm.future(t).result(timeout=WAIT) for t in before] == list(range(5))
        assert tm.future(poison).result(timeout=WAIT) == 99
        assert [tm.future(t).result(timeout=WAIT) for t in after] == list(range(5))
        assert tm.future(blocked).result(timeout=WAIT) is True
        assert tm.system.scheduler is not first_scheduler
        assert tm.get_metrics()["completed_tasks"] == 12
    finally:
        release.set()
        tm.stop_sync(timeout=WAIT)


# -- a property over random DAGs with random failures ------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[tuple[list[int], bool]]:
    """Tasks as (dependencies among the earlier tasks, whether the task itself fails)."""
    size = draw(st.integers(1, 12))
    return [
        (
            sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()),
            draw(st.booleans()),
        )
        for i in range(size)
    ]


def _run(fails: bool) -> str:
    if fails:
        raise RuntimeError("random failure")
    return "ok"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=dags(), slots=st.integers(1, 4), cancel=st.sets(st.integers(0, 11), max_size=2))
def test_every_task_ends_once_consistently_with_its_dependencies(
    graph: list[tuple[list[int], bool]], slots: int, cancel: set[int]
) -> None:
    tm = TaskManager(max_concurrent_tasks=slots)
    try:
        ids: list[str] = []
        for n, (deps, fails) in enumerate(graph):
            ids.append(tm.register_task(f"t{n}", _run, fails, dependencies=[ids[d] for d in deps]))
        cancelled = {n for n in cancel if n < len(ids) and tm.cancel_task_sync(ids[n])}
        tm.start_sync()
        outcomes: dict[int, TaskStatus] = {}
        for n, task_id in enumerate(ids):
            future = tm.future(task_id)
            with contextlib.suppress(Exception):  # the status below says which outcome
                future.result(timeout=WAIT)
            task = tm.get_task(task_id)
            assert task is not None
            outcomes[n] = task.status
            deps, fails = graph[n]
            if n in cancelled:
                expected = TaskStatus.CANCELLED
            elif any(outcomes[d] is not TaskStatus.COMPLETED for d in deps):
                expected = TaskStatus.FAILED
                assert isinstance(task.error, TaskDependencyError)
            else:
                expected = TaskStatus.FAILED if fails else TaskStatus.COMPLETED
                assert task.attempt == 1
                if fails:
                    assert isinstance(task.error, TaskExecutionError)
                else:
                    assert task.started_at is not None
                    for d in deps:
                        finished = tm.get_task(ids[d])
                        assert finished is not None
                        assert finished.completed_at is not None
                        assert finished.completed_at <= task.started_at
            assert task.status is expected, (n, graph, cancelled)
        metrics = tm.get_metrics()
        assert metrics["running_tasks"] + metrics["pending_tasks"] + metrics["waiting_tasks"] == 0
    finally:
        tm.stop_sync(timeout=WAIT)
