"""The old core/task_manager.py calls, as WiseFlow made them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from actors import TaskExecutionError, TaskTimeoutError
from actors import TaskManager as UnifiedTaskManager
from actors.compat.task_manager import (
    Task,
    TaskDependencyError,
    TaskManager,
    TaskPriority,
    TaskStatus,
)

from .conftest import WAIT


def add(a: int, b: int, scale: int = 1) -> int:
    return (a + b) * scale


def test_one_shared_instance_and_a_reset() -> None:
    first = TaskManager()
    assert TaskManager() is first
    TaskManager.reset_instance()
    assert TaskManager() is not first


def test_old_style_calls_run() -> None:
    async def main() -> None:
        tm = TaskManager()
        # positional, the old order: name, func, args, kwargs, priority, dependencies
        a = tm.register_task("a", add, (1, 2), {"scale": 10}, TaskPriority.HIGH)
        b = tm.register_task(
            "b", add, args=(3, 4), dependencies=[a], max_retries=1, retry_delay=0.01, task_id="b"
        )
        await tm.start()
        assert await tm.execute_task(b) == 7
        assert tm.get_task_result(a) == 30
        assert tm.get_task_status(b) is TaskStatus.COMPLETED
        task = tm.get_task(a)
        assert isinstance(task, Task)
        assert task.priority is TaskPriority.HIGH
        assert set(tm.get_all_tasks()) == {a, "b"}
        assert set(tm.get_completed_tasks()) == {a, "b"}
        await tm.stop()

    asyncio.run(main())


def test_status_dicts_reflect_the_live_state() -> None:
    tm = TaskManager(max_concurrent_tasks=1)
    started, release = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        assert release.wait(WAIT)
        return "held"

    running = tm.register_task("running", hold)
    waiting = tm.register_task("waiting", add, (1, 1), dependencies=[running])
    pending = tm.register_task("pending", add, (2, 2))
    assert set(tm.get_pending_tasks()) == {running, pending}
    assert set(tm.get_waiting_tasks()) == {waiting}
    asyncio.run(tm.start())
    assert started.wait(WAIT)
    assert set(tm.get_running_tasks()) == {running}
    assert set(tm.get_pending_tasks()) == {pending}  # one slot: it waits its turn
    assert set(tm.get_waiting_tasks()) == {waiting}
    release.set()
    assert tm.manager.future(waiting).result(timeout=WAIT) == 2
    assert tm.manager.future(pending).result(timeout=WAIT) == 4
    assert set(tm.get_completed_tasks()) == {running, waiting, pending}
    assert tm.get_running_tasks() == {}


def test_failures_cancel_and_timeouts() -> None:
    async def main() -> None:
        tm = TaskManager()

        def boom() -> None:
            raise ValueError("bad page")

        failed = tm.register_task("boom", boom)
        dependent = tm.register_task("after", add, (1, 2), dependencies=[failed])
        slow = tm.register_task("slow", asyncio.sleep, (30,), timeout=0.05)
        never = tm.register_task("never", add, (1, 1), dependencies=[slow])
        assert tm.cancel_task(never) is True
        await tm.start()
        with pytest.raises(TaskExecutionError, match="bad page"):
            await tm.execute_task(failed)
        with pytest.raises(TaskDependencyError):
            await tm.execute_task(dependent)
        with pytest.raises(TaskTimeoutError):
            await tm.execute_task(slow)
        assert set(tm.get_failed_tasks()) == {failed, dependent, slow}
        assert set(tm.get_cancelled_tasks()) == {never}
        assert isinstance(tm.get_task_error(failed), TaskExecutionError)
        assert tm.cancel_task(never) is False
        assert tm.cancel_task("unknown") is False
        assert tm.get_task("unknown") is None
        await tm.stop()

    asyncio.run(main())


def test_unknown_dependency_is_refused() -> None:
    tm = TaskManager()
    with pytest.raises(TaskDependencyError, match="unknown task 'ghost'"):
        tm.register_task("x", add, (1, 2), dependencies=["ghost"])
    assert tm.get_all_tasks() == {}


def test_manager_is_the_unified_task_manager_read_only() -> None:
    tm = TaskManager()
    assert isinstance(tm.manager, UnifiedTaskManager)
    task_id = tm.register_task("a", add, (1, 2))
    assert tm.manager.get_task_status(task_id) is TaskStatus.PENDING
    assert [t.task_id for t in tm.manager.get_all_tasks()] == [task_id]
    with pytest.raises(AttributeError):
        tm.manager = UnifiedTaskManager  # type: ignore[misc,assignment]


def test_after_stop_the_next_instance_is_fresh() -> None:
    async def main() -> None:
        old = TaskManager()
        await old.start()
        await old.stop()
        fresh = TaskManager()
        assert fresh is not old
        assert TaskManager() is fresh
        task_id = fresh.register_task("a", add, (1, 2))
        await fresh.start()
        assert await fresh.execute_task(task_id) == 3
        await fresh.stop()

    asyncio.run(main())


def test_a_different_size_for_the_shared_instance_is_refused() -> None:
    tm = TaskManager(max_concurrent_tasks=2)
    assert TaskManager() is tm
    assert TaskManager(max_concurrent_tasks=2) is tm
    with pytest.raises(ValueError, match=r"max_concurrent_tasks=8\).* runs 2 tasks at once"):
        TaskManager(max_concurrent_tasks=8)
    assert tm.manager.max_concurrent_tasks == 2
    assert TaskManager() is tm


@pytest.mark.parametrize("size", [0, -1, True, 2.0])
def test_a_bad_size_is_refused(size: object) -> None:
    with pytest.raises((ValueError, TypeError), match=r"^max_concurrent_tasks must be an integer"):
        TaskManager(max_concurrent_tasks=size)  # type: ignore[arg-type]
