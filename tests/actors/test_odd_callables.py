"""Odd callables and executors: each ends the way its work really ended, never in a hang.

Each test here is a finding of an adversarial round: the old code completed a task with
an un-awaited coroutine, failed a coroutine's own CancelledError without retrying it,
timed out sync work on the "async" executor before it started, crashed the scheduler
when no executor could run coroutines, and left tasks PENDING on an executor shared
by two systems.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from actors import (
    ActorSystem,
    AsyncExecutor,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    TaskTimeoutError,
    ThreadPoolExecutor,
    current_task,
)

from .conftest import WAIT


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        await asyncio.sleep(0)
        return x + 1


def returns_sleep() -> Any:
    return asyncio.sleep(0, result="slept")


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (lambda: double(21), 42),
        (returns_sleep, "slept"),
        (functools.partial(AsyncCallable(), 1), 2),
        (functools.partial(functools.partial(double, 4)), 8),
    ],
    ids=[
        "lambda-returning-coroutine",
        "sync-returning-awaitable",
        "partial-async-call",
        "partials",
    ],
)
def test_a_callable_that_gives_a_coroutine_has_it_awaited(
    tm: TaskManager, func: Callable[[], Any], expected: Any
) -> None:
    task_id = tm.register_task("odd", func)
    assert tm.future(task_id).result(timeout=WAIT) == expected
    assert tm.get_task_status(task_id) is TaskStatus.COMPLETED


def test_a_partial_of_a_coroutine_function_runs_on_the_loop(tm: TaskManager) -> None:
    task_id = tm.register_task("p", functools.partial(AsyncCallable(), 1))
    task = tm.get_task(task_id)
    assert task is not None
    assert task.is_coroutine
    assert task.executor == "async"


def test_an_awaited_result_sees_its_task_context(tm: TaskManager) -> None:
    async def whoami() -> str:
        return current_task().task_id

    task_id = tm.register_task("ctx", lambda: whoami())
    assert tm.future(task_id).result(timeout=WAIT) == task_id


def test_a_timeout_cancels_the_awaitable_a_sync_function_returned(tm: TaskManager) -> None:
    cleaned_up = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    task_id = tm.register_task("slow", lambda: forever(), timeout=0.2)
    with pytest.raises(TaskTimeoutError):
        tm.future(task_id).result(timeout=WAIT)
    assert cleaned_up.wait(WAIT), "the awaitable was never cancelled"
    # The slot comes back once the waiting thread returns.
    assert tm.system.store.when_idle().result(timeout=WAIT) is None


def test_a_coroutine_raising_cancelled_error_itself_is_retried(tm: TaskManager) -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(current_task().attempt)
        if len(calls) == 1:
            raise asyncio.CancelledError("gave up by itself")
        return "ok"

    task_id = tm.register_task("flaky", flaky, max_retries=1, retry_delay=0)
    assert tm.future(task_id).result(timeout=WAIT) == "ok"
    assert calls == [1, 2]


def test_a_coroutine_raising_cancelled_error_without_retries_fails_as_itself(
    tm: TaskManager,
) -> None:
    async def quits() -> None:
        raise asyncio.CancelledError("my own")

    task_id = tm.register_task("quits", quits)
    with pytest.raises(TaskExecutionError) as caught:
        tm.future(task_id).result(timeout=WAIT)
    assert isinstance(caught.value.original_error, asyncio.CancelledError)
    assert tm.get_task_status(task_id) is TaskStatus.FAILED


def test_sync_work_on_the_async_executor_gets_every_slot_it_reports(
    make_manager: Callable[..., TaskManager],
) -> None:
    # More than the loop's default thread pool has (min(32, cpus + 4)): that pool
    # capped the old executor below the capacity it reported.
    slots = min(32, (os.cpu_count() or 1) + 4) + 2
    tm = make_manager(max_concurrent_tasks=slots)
    tm.system.add_executor(AsyncExecutor(max_concurrency=slots, name="loop"))
    together = threading.Barrier(slots, timeout=WAIT)

    def meet() -> int:
        return together.wait()

    ids = [
        tm.register_task(f"t{i}", meet, executor_type="loop", timeout=WAIT) for i in range(slots)
    ]
    positions = sorted(tm.future(i).result(timeout=WAIT * 2) for i in ids)
    assert positions == list(range(slots))  # every one was running at the same time


def test_a_coroutine_without_a_coroutine_executor_is_refused() -> None:
    with ActorSystem(executors=[ThreadPoolExecutor(2, name="async")]) as system:
        tm = system.task_manager
        with pytest.raises(ValueError, match="has no AsyncExecutor to run a coroutine function"):
            tm.register_task("c", double, 1)
        assert tm.get_all_tasks() == []
        # The scheduler lives on: sync work still runs.
        task_id = tm.register_task("s", int, "7")
        assert tm.future(task_id).result(timeout=WAIT) == 7
        # A sync function's awaitable has no loop to run on: a clear failure, no hang.
        odd = tm.register_task("odd", lambda: double(1))
        with pytest.raises(TaskExecutionError, match="no AsyncExecutor"):
            tm.future(odd).result(timeout=WAIT)
        assert tm.get_metrics()["running_tasks"] == 0
        tm.stop_sync(timeout=WAIT)


def test_an_executor_serves_one_system(make_manager: Callable[..., TaskManager]) -> None:
    shared = ThreadPoolExecutor(2, name="shared")
    first = make_manager()
    assert first.future(first.register_task("a", int, "1", executor_type=shared)).result(WAIT) == 1
    second = make_manager()
    with pytest.raises(ValueError, match="'shared' belongs to actor system"):
        second.register_task("b", int, "2", executor_type=shared)
    assert second.get_all_tasks() == []
    assert "shared" not in second.get_metrics()["executors"]
    with pytest.raises(ValueError, match="an executor serves one system"):
        ActorSystem(executors=[shared], autostart=False)


def test_a_refused_system_claims_none_of_its_executors() -> None:
    taken = ThreadPoolExecutor(1, name="taken")
    free = ThreadPoolExecutor(1, name="free")
    with (
        ActorSystem(executors=[taken], autostart=False),
        pytest.raises(ValueError, match="'taken' belongs"),
    ):
        ActorSystem(executors=[free, taken], autostart=False)
    with ActorSystem(executors=[free]) as system:  # still free to use
        tm = system.task_manager
        assert tm.future(tm.register_task("x", int, "3", executor_type="free")).result(WAIT) == 3
        tm.stop_sync(timeout=WAIT)


def test_snapshots_cannot_change_the_task(tm: TaskManager) -> None:
    metadata = {"path": "/a"}
    kwargs = {"base": 10}
    task_id = tm.register_task("x", int, "11", kwargs=kwargs, metadata=metadata)
    metadata["path"] = "/changed"  # the caller's dict is theirs: the task kept a copy
    kwargs["base"] = 2
    snapshot = tm.get_task(task_id)
    assert snapshot is not None
    with pytest.raises(TypeError):
        snapshot.metadata["path"] = "/b"  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.kwargs["base"] = 16  # type: ignore[index]
    again = tm.get_task(task_id)
    assert again is not None
    assert dict(again.metadata) == {"path": "/a"}
    assert tm.future(task_id).result(timeout=WAIT) == 11
