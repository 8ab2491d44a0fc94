"""The old ThreadPoolManager, called from plain threads with no event loop anywhere."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from actors import TaskExecutionError
from actors import TaskManager as UnifiedTaskManager
from actors.compat.thread_pool_manager import TaskPriority, TaskStatus, ThreadPoolManager

from .conftest import WAIT


def scale(x: int, factor: int = 1) -> int:
    return x * factor


def no_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def test_shared_instance_with_cpu_count_workers() -> None:
    pool = ThreadPoolManager()
    assert ThreadPoolManager() is pool
    assert pool.max_workers == (os.cpu_count() or 1)
    assert pool.get_metrics()["worker_count"] == pool.max_workers


def test_submit_from_plain_threads_runs_at_once() -> None:
    pool = ThreadPoolManager(max_workers=2)
    ids: dict[int, str] = {}

    def client(n: int) -> None:
        ids[n] = pool.submit(scale, n, factor=3, name=f"scale {n}", priority=TaskPriority.HIGH)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert no_running_loop()
    assert {n: pool.future(t).result(timeout=WAIT) for n, t in ids.items()} == {
        n: 3 * n for n in range(6)
    }
    assert pool.get_task_status(ids[0]) is TaskStatus.COMPLETED
    assert pool.get_task_result(ids[5]) == 15
    task = pool.get_task(ids[1])
    assert task is not None
    assert task.name == "scale 1"
    assert set(pool.get_all_tasks()) == set(ids.values())
    assert pool.get_metrics()["completed_tasks"] == 6


def test_work_runs_without_an_event_loop() -> None:
    pool = ThreadPoolManager()
    task_id = pool.submit(no_running_loop, task_id="where")
    assert task_id == "where"
    assert pool.future(task_id).result(timeout=WAIT) is True


def test_failures_and_cancel() -> None:
    pool = ThreadPoolManager(max_workers=1)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert release.wait(WAIT)

    def boom() -> None:
        raise OSError("disk full")

    holding = pool.submit(hold)
    assert started.wait(WAIT)
    queued = pool.submit(scale, 1)
    failing = pool.submit(boom)
    metrics = pool.get_metrics()
    assert (metrics["active_workers"], metrics["queue_size"]) == (1, 2)
    assert pool.cancel(queued) is True
    release.set()
    with pytest.raises(TaskExecutionError, match="disk full"):
        pool.future(failing).result(timeout=WAIT)
    pool.future(holding).result(timeout=WAIT)
    assert isinstance(pool.get_task_error(failing), TaskExecutionError)
    assert pool.cancel(queued) is False
    assert pool.cancel("unknown") is False
    metrics = pool.get_metrics()
    assert (metrics["completed_tasks"], metrics["failed_tasks"], metrics["cancelled_tasks"]) == (
        1,
        1,
        1,
    )


def test_shutdown_waits_for_submitted_work_then_a_new_pool_starts() -> None:
    pool = ThreadPoolManager(max_workers=2)
    ids = [pool.submit(scale, n) for n in range(10)]
    pool.shutdown(wait=True)
    assert [pool.get_task_result(t) for t in ids] == list(range(10))
    assert ThreadPoolManager() is not pool


def test_shutdown_without_waiting_cancels_what_is_left() -> None:
    pool = ThreadPoolManager(max_workers=1)
    started = threading.Event()

    def cooperative() -> None:
        started.set()
        while True:
            from actors import current_task

            current_task().raise_if_cancelled()
            threading.Event().wait(0.001)

    running = pool.submit(cooperative)
    queued = pool.submit(scale, 2)
    assert started.wait(WAIT)
    pool.shutdown(wait=False)
    assert pool.get_task_status(running) is TaskStatus.CANCELLED
    assert pool.get_task_status(queued) is TaskStatus.CANCELLED


def test_manager_is_the_unified_task_manager_read_only() -> None:
    pool = ThreadPoolManager(max_workers=2)
    assert isinstance(pool.manager, UnifiedTaskManager)
    assert pool.manager.max_concurrent_tasks == 2
    task_id = pool.submit(scale, 4, factor=2)
    assert pool.manager.future(task_id).result(timeout=WAIT) == 8
    with pytest.raises(AttributeError):
        pool.manager = UnifiedTaskManager  # type: ignore[misc,assignment]


def test_a_different_size_for_the_shared_pool_is_refused() -> None:
    pool = ThreadPoolManager(2)
    assert ThreadPoolManager() is pool
    assert ThreadPoolManager(max_workers=2) is pool
    with pytest.raises(ValueError, match=r"max_workers=8\): .* already has max_workers=2"):
        ThreadPoolManager(8)
    assert ThreadPoolManager() is pool
    assert pool.get_metrics()["worker_count"] == 2
    pool.shutdown()
    assert ThreadPoolManager(8).max_workers == 8


@pytest.mark.parametrize("size", [0, -1, True, 2.0])
def test_a_bad_size_is_refused(size: object) -> None:
    with pytest.raises((ValueError, TypeError), match=r"^max_workers must be an integer"):
        ThreadPoolManager(size)  # type: ignore[arg-type]
