"""TaskManager: registration, order, slots, dependencies, retries, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from actors import (
    AsyncExecutor,
    TaskCancellationError,
    TaskDependencyError,
    TaskExecutionError,
    TaskManager,
    TaskNotFoundError,
    TaskPriority,
    TaskStatus,
    TaskTimeoutError,
    current_task,
    messages,
)

from .conftest import WAIT, Gate, run


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def boom() -> None:
    raise ValueError("boom")


def wait_done(tm: TaskManager, task_id: str) -> Any:
    """The task's outcome (result or raised TaskError), through its future."""
    return tm.future(task_id).result(timeout=WAIT)


# -- registration -----------------------------------------------------------------------------


def test_positional_and_keyword_forms_register_the_same_call(tm: TaskManager) -> None:
    positional = tm.register_task("p", add, 1, 2, kwargs={"scale": 10})
    legacy = tm.register_task("l", add, args=(1, 2), kwargs={"scale": 10})
    keywords = tm.register_task(name="k", func=add, args=[1, 2], kwargs={"scale": 10})
    assert [wait_done(tm, t) for t in (positional, legacy, keywords)] == [30, 30, 30]


def test_args_given_twice_is_refused(tm: TaskManager) -> None:
    with pytest.raises(TypeError, match="not both"):
        tm.register_task("x", add, 1, args=(2,))
    assert tm.get_metrics()["total_tasks"] == 0


def test_execute_task_returns_the_result_and_starts_the_manager(tm: TaskManager) -> None:
    task_id = tm.register_task("add", add, 2, 3, task_id="my-id")
    assert task_id == "my-id"
    assert tm.get_task_status(task_id) is TaskStatus.PENDING
    assert run(tm.execute_task(task_id)) == 5
    task = tm.get_task(task_id)
    assert task is not None
    assert (task.status, task.result, task.attempt, task.progress) == (
        TaskStatus.COMPLETED,
        5,
        1,
        1.0,
    )
    assert task.started_at is not None
    assert task.completed_at is not None
    assert task.completed_at >= task.started_at


def test_a_raising_task_fails_with_task_execution_error(tm: TaskManager) -> None:
    task_id = tm.register_task("boom", boom)
    with pytest.raises(TaskExecutionError) as caught:
        run(tm.execute_task(task_id))
    assert isinstance(caught.value.original_error, ValueError)
    assert caught.value.__cause__ is caught.value.original_error
    assert caught.value.task_id == task_id
    assert tm.get_task_status(task_id) is TaskStatus.FAILED
    assert tm.get_task_error(task_id) is not None
    assert tm.get_task_result(task_id) is None


# -- order and slots --------------------------------------------------------------------------


def test_priority_then_registration_order_with_one_slot(
    make_manager: Callable[..., TaskManager], gate: Gate
) -> None:
    tm = make_manager(max_concurrent_tasks=1)
    order: list[str] = []
    first = tm.register_task("gate", gate.hold, "gate")
    tm.start_sync()
    gate.wait_arrivals(1)  # the one slot is taken; everything below queues
    ids = [
        tm.register_task(name, order.append, name, priority=priority)
        for name, priority in [
            ("low", TaskPriority.LOW),
            ("normal-1", TaskPriority.NORMAL),
            ("critical", TaskPriority.CRITICAL),
            ("high", TaskPriority.HIGH),
            ("normal-2", TaskPriority.NORMAL),
        ]
    ]
    # The scheduler handles messages in order: once it answered this, it has queued all
    # five, so none of them can take the slot before the others are in the queue.
    tm.system.scheduler.ask(messages.GetStatus(ids[-1]), timeout=WAIT)
    gate.open()
    for task_id in [first, *ids]:
        wait_done(tm, task_id)
    assert order == ["critical", "high", "normal-1", "normal-2", "low"]


def test_priority_order_of_tasks_registered_before_start(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(max_concurrent_tasks=1)
    order: list[str] = []
    ids = [
        tm.register_task(name, order.append, name, priority=priority)
        for name, priority in [
            ("low", TaskPriority.LOW),
            ("high-1", TaskPriority.HIGH),
            ("normal", TaskPriority.NORMAL),
            ("high-2", TaskPriority.HIGH),
        ]
    ]
    for task_id in ids:
        wait_done(tm, task_id)
    assert order == ["high-1", "high-2", "normal", "low"]


def test_the_concurrency_cap_holds_under_load(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(max_concurrent_tasks=3)
    lock = threading.Lock()
    running = peak = 0
    full = threading.Barrier(3, timeout=WAIT)  # the first three must run together

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if n < 3:
            full.wait()
        with lock:
            running -= 1
        return n

    ids = [tm.register_task(f"w{n}", work, n) for n in range(40)]
    assert [wait_done(tm, t) for t in ids] == list(range(40))
    assert peak == 3


def test_an_executors_capacity_limits_its_tasks(
    make_manager: Callable[..., TaskManager], gate: Gate
) -> None:
    tm = make_manager(max_concurrent_tasks=4)
    ids = [
        tm.register_task(f"s{n}", gate.hold, f"s{n}", executor_type="sequential") for n in range(3)
    ]
    tm.start_sync()
    gate.wait_arrivals(1)
    assert tm.get_metrics()["running_tasks"] == 1  # sequential: one at a time
    gate.open()
    assert [wait_done(tm, t) for t in ids] == ["s0", "s1", "s2"]
    assert gate.entered == ["s0", "s1", "s2"]


# -- dependencies -----------------------------------------------------------------------------


def test_dependencies_run_first(tm: TaskManager) -> None:
    order: list[str] = []
    a = tm.register_task("a", order.append, "a")
    b = tm.register_task("b", order.append, "b", dependencies=[a])
    c = tm.register_task(
        "c", order.append, "c", dependencies=[a, b], priority=TaskPriority.CRITICAL
    )
    assert tm.get_task_status(c) is TaskStatus.WAITING
    wait_done(tm, c)
    assert order == ["a", "b", "c"]


def test_a_failure_cascades_three_levels(tm: TaskManager) -> None:
    root = tm.register_task("root", boom)
    level1 = tm.register_task("l1", add, 1, 1, dependencies=[root])
    level2 = tm.register_task("l2", add, 1, 1, dependencies=[level1])
    level3 = tm.register_task("l3", add, 1, 1, dependencies=[level2])
    sibling = tm.register_task("ok", add, 1, 1)
    with pytest.raises(TaskDependencyError) as caught:
        run(tm.execute_task(level3))  # returns: never waits forever on a failed dependency
    assert caught.value.details["dependency"] == level2
    for task_id, dependency in [(level1, root), (level2, level1)]:
        error = tm.get_task_error(task_id)
        assert isinstance(error, TaskDependencyError)
        assert error.details["dependency"] == dependency
    assert wait_done(tm, sibling) == 2


def test_a_task_registered_after_its_dependency_failed_fails_too(tm: TaskManager) -> None:
    root = tm.register_task("root", boom)
    with pytest.raises(TaskExecutionError):
        run(tm.execute_task(root))
    late = tm.register_task("late", add, 1, 2, dependencies=[root])
    with pytest.raises(TaskDependencyError):
        wait_done(tm, late)


# -- retries ----------------------------------------------------------------------------------


def test_retries_are_counted_exactly(tm: TaskManager) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(current_task().attempt)
        if len(attempts) < 3:
            raise RuntimeError(f"fail {len(attempts)}")
        return "ok"

    task_id = tm.register_task("flaky", flaky, max_retries=5, retry_delay=0.001)
    assert wait_done(tm, task_id) == "ok"
    assert attempts == [1, 2, 3]
    task = tm.get_task(task_id)
    assert task is not None
    assert (task.retry_count, task.attempt) == (2, 3)


def test_retries_run_out(tm: TaskManager) -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise RuntimeError("never works")

    task_id = tm.register_task("always", always, max_retries=2, retry_delay=0)
    with pytest.raises(TaskExecutionError, match="never works"):
        wait_done(tm, task_id)
    assert len(calls) == 3
    task = tm.get_task(task_id)
    assert task is not None
    assert task.retry_count == 2


def test_the_retry_delay_grows_and_frees_the_slot(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(max_concurrent_tasks=1)
    log: list[tuple[str, float]] = []

    def flaky() -> None:
        log.append(("flaky", time.monotonic()))
        if current_task().attempt < 3:
            raise RuntimeError("again")

    other_ran = threading.Event()
    flaky_id = tm.register_task("flaky", flaky, max_retries=2, retry_delay=0.05)
    other = tm.register_task("other", other_ran.set, priority=TaskPriority.LOW)
    wait_done(tm, flaky_id)
    wait_done(tm, other)
    times = [t for name, t in log]
    assert times[1] - times[0] >= 0.05  # retry_delay * 2**0
    assert times[2] - times[1] >= 0.1  # retry_delay * 2**1
    # With one slot, "other" could only run while flaky waited for its retry.
    assert other_ran.is_set()
    assert tm.get_task(other).completed_at < tm.get_task(flaky_id).completed_at  # type: ignore[union-attr]


# -- timeouts ---------------------------------------------------------------------------------


def test_thread_work_times_out_and_is_interrupted(tm: TaskManager) -> None:
    interrupted = threading.Event()
    never = threading.Event()

    def stuck() -> None:
        try:
            while not never.wait(0.005):
                pass
        finally:
            interrupted.set()

    task_id = tm.register_task("stuck", stuck, timeout=0.05)
    with pytest.raises(TaskTimeoutError) as caught:
        run(tm.execute_task(task_id))
    assert not isinstance(caught.value, TaskExecutionError)
    assert caught.value.details["timeout"] == 0.05
    assert interrupted.wait(WAIT)


def test_async_work_times_out_and_is_cancelled(tm: TaskManager) -> None:
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task_id = tm.register_task("stuck", stuck, timeout=0.05)
    with pytest.raises(TaskTimeoutError):
        run(tm.execute_task(task_id))
    assert cancelled.wait(WAIT)


def test_a_timed_out_thread_keeps_its_slot_until_it_returns(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(max_concurrent_tasks=1)
    release = threading.Event()
    # One blocking C call: the interruption can only land once it returns.
    stuck = tm.register_task("stuck", release.wait, WAIT, timeout=0.02)
    after = tm.register_task("after", add, 1, 1)
    with pytest.raises(TaskTimeoutError):
        wait_done(tm, stuck)
    assert tm.get_task_status(after) is TaskStatus.PENDING
    assert tm.get_metrics()["executors"]["thread_pool"]["busy"] == 1
    release.set()
    assert wait_done(tm, after) == 2


def test_a_timeout_is_retried_like_a_failure(tm: TaskManager) -> None:
    async def slow_then_fast() -> str:
        if current_task().attempt == 1:
            await asyncio.sleep(60)
        return "second time"

    task_id = tm.register_task("s", slow_then_fast, timeout=0.05, max_retries=1, retry_delay=0)
    assert wait_done(tm, task_id) == "second time"


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_a_pending_task(make_manager: Callable[..., TaskManager], gate: Gate) -> None:
    tm = make_manager(max_concurrent_tasks=1)
    ran: list[str] = []
    first = tm.register_task("gate", gate.hold)
    tm.start_sync()
    gate.wait_arrivals(1)
    queued = tm.register_task("queued", ran.append, "queued")
    assert run(tm.cancel_task(queued)) is True
    assert tm.get_task_status(queued) is TaskStatus.CANCELLED
    gate.open()
    wait_done(tm, first)
    with pytest.raises(TaskCancellationError):
        wait_done(tm, queued)
    assert ran == []
    assert run(tm.cancel_task(queued)) is False


def test_a_cancelled_waiting_task_never_comes_back(tm: TaskManager, gate: Gate) -> None:
    ran: list[str] = []
    dependency = tm.register_task("dep", gate.hold)
    waiting = tm.register_task("waiting", ran.append, "x", dependencies=[dependency])
    tm.start_sync()
    assert tm.cancel_task_sync(waiting) is True
    gate.open()
    wait_done(tm, dependency)
    dependent_of_cancelled = tm.register_task("next", add, 1, 1, dependencies=[waiting])
    with pytest.raises(TaskDependencyError):
        wait_done(tm, dependent_of_cancelled)
    assert tm.get_task_status(waiting) is TaskStatus.CANCELLED
    assert ran == []


def test_cancel_running_thread_work(tm: TaskManager) -> None:
    started = threading.Event()
    saw_flag = threading.Event()

    def cooperative() -> None:
        started.set()
        context = current_task()
        try:
            while not context.cancelled:
                time.sleep(0.001)
        finally:
            if context.cancelled:
                saw_flag.set()

    task_id = tm.register_task("coop", cooperative, max_retries=3)
    tm.start_sync()
    assert started.wait(WAIT)
    assert tm.cancel_task_sync(task_id) is True
    assert tm.get_task_status(task_id) is TaskStatus.CANCELLED  # at once
    assert saw_flag.wait(WAIT)
    with pytest.raises(TaskCancellationError):
        wait_done(tm, task_id)
    task = tm.get_task(task_id)
    assert task is not None
    assert task.attempt == 1  # never retried


def test_cancel_running_async_work(tm: TaskManager) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def sleeper() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task_id = tm.register_task("sleeper", sleeper)
    tm.start_sync()
    assert started.wait(WAIT)
    assert tm.cancel_task_sync(task_id) is True
    assert cancelled.wait(WAIT)
    assert tm.get_task_status(task_id) is TaskStatus.CANCELLED


def test_cancel_racing_completion_has_one_outcome(tm: TaskManager) -> None:
    tm.start_sync()
    for n in range(200):
        task_id = tm.register_task(f"t{n}", add, n, 0)
        cancelled = tm.cancel_task_sync(task_id)
        future = tm.future(task_id)
        if cancelled:
            with pytest.raises(TaskCancellationError):
                future.result(timeout=WAIT)
            assert tm.get_task_status(task_id) is TaskStatus.CANCELLED
        else:
            assert future.result(timeout=WAIT) == n
            assert tm.get_task_status(task_id) is TaskStatus.COMPLETED


def test_cancel_unknown_and_finished_tasks(tm: TaskManager) -> None:
    with pytest.raises(TaskNotFoundError):
        run(tm.cancel_task("nope"))
    task_id = tm.register_task("a", add, 1, 1)
    wait_done(tm, task_id)
    assert run(tm.cancel_task(task_id)) is False


def test_stop_with_running_work_cancels_it(make_manager: Callable[..., TaskManager]) -> None:
    tm = make_manager()
    started = threading.Event()

    def forever() -> None:
        started.set()
        while True:
            current_task().raise_if_cancelled()
            time.sleep(0.001)

    running = tm.register_task("forever", forever)
    waiting = tm.register_task("later", add, 1, 1, dependencies=[running])
    tm.start_sync()
    assert started.wait(WAIT)
    run(tm.stop())
    assert tm.get_task_status(running) is TaskStatus.CANCELLED
    assert tm.get_task_status(waiting) is TaskStatus.CANCELLED
    assert not tm.is_running
    run(tm.stop())  # idempotent


# -- context, progress, futures -----------------------------------------------------------------


def test_progress_is_reported(tm: TaskManager, gate: Gate) -> None:
    def work() -> None:
        current_task().report_progress(0.5, "half way")
        gate.hold()

    task_id = tm.register_task("work", work)
    tm.start_sync()
    gate.wait_arrivals(1)
    assert tm.get_task_progress(task_id) == (0.5, "half way")
    gate.open()
    wait_done(tm, task_id)
    assert tm.get_task_progress(task_id) == (1.0, "half way")
    assert tm.get_task_progress("nope") is None


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_progress_out_of_range_is_refused(tm: TaskManager, fraction: float) -> None:
    def work() -> None:
        current_task().report_progress(fraction)

    task_id = tm.register_task("work", work)
    with pytest.raises(TaskExecutionError) as caught:
        wait_done(tm, task_id)
    assert isinstance(caught.value.original_error, ValueError)


def test_current_task_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="outside a running task"):
        current_task()


def test_current_task_in_coroutines(tm: TaskManager) -> None:
    async def who() -> tuple[str, int]:
        await asyncio.sleep(0)
        context = current_task()
        return context.task_id, context.attempt

    task_id = tm.register_task("who", who)
    assert wait_done(tm, task_id) == (task_id, 1)


def test_futures_from_plain_threads(tm: TaskManager) -> None:
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            task_id = tm.register_task(f"c{n}", add, n, n)
            results[n] = tm.future(task_id).result(timeout=WAIT)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    assert results == {n: 2 * n for n in range(8)}


def test_a_future_cannot_be_cancelled_behind_the_managers_back(tm: TaskManager) -> None:
    task_id = tm.register_task("a", add, 1, 1)
    assert tm.future(task_id).cancel() is False
    assert wait_done(tm, task_id) == 2


def test_registration_from_eight_threads_at_once(tm: TaskManager) -> None:
    barrier = threading.Barrier(8, timeout=WAIT)
    ids: list[list[str]] = [[] for _ in range(8)]

    def register(n: int) -> None:
        barrier.wait()
        for k in range(50):
            ids[n].append(tm.register_task(f"t{n}-{k}", add, n, k))

    tm.start_sync()
    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    all_ids = [task_id for chunk in ids for task_id in chunk]
    assert len(set(all_ids)) == 400
    for n, chunk in enumerate(ids):
        assert [wait_done(tm, t) for t in chunk] == [n + k for k in range(50)]
    assert tm.get_metrics()["completed_tasks"] == 400


# -- executors --------------------------------------------------------------------------------


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _async_on_loop() -> bool:
    return _on_loop()


@pytest.mark.parametrize(
    ("func", "executor_type", "on_loop", "executor"),
    [
        (_on_loop, "auto", False, "thread_pool"),
        (_async_on_loop, "auto", True, "async"),
        (_on_loop, "async", False, "async"),  # sync work never runs on the loop thread
        (_async_on_loop, "thread_pool", True, "thread_pool"),  # nor blocks a pool thread
        (_on_loop, "sequential", False, "sequential"),
    ],
)
def test_where_work_runs(
    tm: TaskManager, func: Callable[[], Any], executor_type: str, on_loop: bool, executor: str
) -> None:
    task_id = tm.register_task("where", func, executor_type=executor_type)
    assert wait_done(tm, task_id) is on_loop
    task = tm.get_task(task_id)
    assert task is not None
    assert task.executor == executor


def test_an_executor_instance_is_added_on_first_use(tm: TaskManager) -> None:
    executor = AsyncExecutor(max_concurrency=2, name="small-loop")
    task_id = tm.register_task("x", _async_on_loop, executor_type=executor)
    assert wait_done(tm, task_id) is True
    assert tm.get_metrics()["executors"]["small-loop"]["capacity"] == 2


# -- reading ----------------------------------------------------------------------------------


def test_getters_for_unknown_ids(tm: TaskManager) -> None:
    assert tm.get_task("nope") is None
    assert tm.get_task_status("nope") is None
    assert tm.get_task_result("nope") is None
    assert tm.get_task_error("nope") is None
    with pytest.raises(TaskNotFoundError):
        run(tm.execute_task("nope"))
    with pytest.raises(TaskNotFoundError):
        tm.future("nope")


def test_snapshots_are_copies(tm: TaskManager) -> None:
    task_id = tm.register_task("a", add, 1, 1, tags=["x"])
    snapshot = tm.get_task(task_id)
    assert snapshot is not None
    snapshot.status = TaskStatus.FAILED
    assert tm.get_task_status(task_id) is TaskStatus.PENDING


def test_tasks_by_status_and_tag_and_metrics(tm: TaskManager) -> None:
    a = tm.register_task("a", add, 1, 1, tags=["crawl", "front"])
    b = tm.register_task("b", boom, tags=["crawl"])
    with pytest.raises(TaskExecutionError):
        wait_done(tm, b)
    wait_done(tm, a)
    assert [t.task_id for t in tm.get_tasks_by_tag("crawl")] == [a, b]
    assert [t.task_id for t in tm.get_tasks_by_status(TaskStatus.FAILED)] == [b]
    metrics = tm.get_metrics()
    assert {k: metrics[k] for k in metrics if k.endswith("_tasks")} == {
        "total_tasks": 2,
        "pending_tasks": 0,
        "running_tasks": 0,
        "completed_tasks": 1,
        "failed_tasks": 1,
        "cancelled_tasks": 0,
        "waiting_tasks": 0,
        "abandoned_tasks": 0,
        "registered_tasks": 2,
        "forgotten_tasks": 0,
        "max_concurrent_tasks": 4,
    }
    assert metrics["is_running"] is True
    assert set(metrics["executors"]) == {"thread_pool", "async", "sequential"}


def test_async_with_starts_and_stops() -> None:
    async def main() -> tuple[int, bool]:
        async with TaskManager() as tm:
            result = await tm.execute_task(tm.register_task("a", add, 2, 2))
        return result, tm.is_running

    assert run(main()) == (4, False)


def test_state_changes_are_logged(tm: TaskManager, log_events: list[dict[str, Any]]) -> None:
    task_id = tm.register_task("flaky", boom, max_retries=1, retry_delay=0)
    with pytest.raises(TaskExecutionError):
        wait_done(tm, task_id)
    mine = [(e["event"], e["attempt"]) for e in log_events if e.get("task_id") == task_id]
    assert mine == [
        ("task.registered", 0),
        ("task.started", 1),
        ("task.retrying", 1),
        ("task.started", 2),
        ("task.failed", 2),
    ]
    assert all(e["task_name"] == "flaky" for e in log_events if e.get("task_id") == task_id)
    # No key that logging.LogRecord owns; a retried failure is a warning, a final one an error.
    assert not any("name" in e for e in log_events if e.get("task_id") == task_id)
    levels = {e["event"]: e["level"] for e in log_events if e.get("task_id") == task_id}
    assert (levels["task.retrying"], levels["task.failed"]) == ("warning", "error")


def test_work_cancelled_before_it_began_never_begins(tm: TaskManager) -> None:
    loop_blocked, unblock = threading.Event(), threading.Event()
    began: list[str] = []

    async def block_the_loop() -> None:
        loop_blocked.set()
        assert unblock.wait(WAIT)  # holds the loop thread: nothing else runs on it

    async def never() -> None:
        began.append("never")

    blocker = tm.register_task("blocker", block_the_loop)
    tm.start_sync()
    assert loop_blocked.wait(WAIT)
    victim = tm.register_task("victim", never)
    tm.system.scheduler.ask(messages.GetStatus(victim), timeout=WAIT)  # dispatched by now
    assert tm.get_task_status(victim) is TaskStatus.RUNNING  # its actor waits for the loop
    assert tm.cancel_task_sync(victim) is True
    unblock.set()
    wait_done(tm, blocker)
    with pytest.raises(TaskCancellationError):
        wait_done(tm, victim)
    tm.stop_sync(timeout=WAIT)
    assert began == []


def test_metrics_show_work_abandoned_past_its_timeout(tm: TaskManager) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck_in_c() -> None:
        entered.set()
        release.wait(WAIT)  # a C-level wait: the interruption lands only when it returns

    task_id = tm.register_task("stuck", stuck_in_c, timeout=0.05)
    with pytest.raises(TaskTimeoutError):
        tm.future(task_id).result(timeout=WAIT)
    assert entered.is_set()
    metrics = tm.get_metrics()
    assert metrics["running_tasks"] == 0
    assert metrics["abandoned_tasks"] == 1
    assert metrics["executors"]["thread_pool"]["busy"] == 1
    assert metrics["executors"]["thread_pool"]["abandoned"] == 1
    release.set()
    tm.system.store.when_idle().result(timeout=WAIT)
    metrics = tm.get_metrics()
    assert metrics["abandoned_tasks"] == 0
    assert metrics["executors"]["thread_pool"] == {
        "type": "thread_pool",
        "capacity": metrics["executors"]["thread_pool"]["capacity"],
        "prefetch": 0,  # only executors whose work runs elsewhere take more than capacity
        "busy": 0,
        "abandoned": 0,
    }


@pytest.mark.parametrize(
    ("fraction", "message", "error", "match"),
    [
        (1.5, "", ValueError, r"fraction must be a finite number >= 0 and <= 1, got 1.5"),
        (float("nan"), "", ValueError, "fraction must be a finite number"),
        (True, "", TypeError, "fraction must be a number, got True"),
        (0.5, None, TypeError, "message must be a string, got None"),
    ],
)
def test_bad_progress_is_refused_in_the_task(
    tm: TaskManager, fraction: Any, message: Any, error: type[Exception], match: str
) -> None:
    def report() -> None:
        current_task().report_progress(fraction, message)

    task_id = tm.register_task("report", report)
    with pytest.raises(TaskExecutionError) as caught:
        tm.future(task_id).result(timeout=WAIT)
    assert isinstance(caught.value.original_error, error)
    assert re.search(match, str(caught.value.original_error))
    assert tm.get_task_progress(task_id) == (0.0, "")
