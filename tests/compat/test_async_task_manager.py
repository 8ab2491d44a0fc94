"""The old AsyncTaskManager with focus points."""

from __future__ import annotations

import asyncio

import pytest

from actors import TaskExecutionError
from actors import TaskManager as UnifiedTaskManager
from actors.compat.async_task_manager import AsyncTaskManager, Task, TaskStatus


async def crawl(site: str, pages: int) -> str:
    await asyncio.sleep(0.001)
    return f"{site}:{pages}"


def parse(text: str) -> int:
    return len(text)


async def broken(site: str) -> None:
    raise ConnectionError(site)


def test_tasks_by_focus_with_live_status_and_result() -> None:
    async def main() -> None:
        manager = AsyncTaskManager(max_workers=2)
        tasks = [
            Task("f1-a", "focus-1", crawl, ("a.org", 3)),
            Task("f1-b", "focus-1", parse, ("hello",)),
            Task("f2-a", "focus-2", crawl, ("b.org", 1)),
            Task("f2-x", "focus-2", broken, ("c.org",)),
        ]
        assert tasks[0].status is TaskStatus.PENDING
        for task in tasks:
            assert await manager.submit_task(task) == task.task_id
        await manager.shutdown(wait=True)
        assert [t.task_id for t in manager.get_tasks_by_focus("focus-1")] == ["f1-a", "f1-b"]
        assert [(t.status, t.result) for t in manager.get_tasks_by_focus("focus-1")] == [
            (TaskStatus.COMPLETED, "a.org:3"),
            (TaskStatus.COMPLETED, 5),
        ]
        failed = manager.get_tasks_by_focus("focus-2")[1]
        assert failed.status is TaskStatus.FAILED
        assert isinstance(failed.error, TaskExecutionError)
        assert manager.get_tasks_by_focus("nobody") == []

    asyncio.run(main())


def test_auto_shutdown_stops_the_manager_after_its_task() -> None:
    async def main() -> None:
        manager = AsyncTaskManager()
        last = Task("last", "focus", crawl, ("z.org", 1), auto_shutdown=True)
        await manager.submit_task(Task("first", "focus", crawl, ("y.org", 2)))
        await manager.submit_task(last)
        await asyncio.wait_for(manager.closed.wait(), 5)
        assert not manager.manager.is_running
        assert last.status is TaskStatus.COMPLETED
        assert manager.get_task("first").status is TaskStatus.COMPLETED  # type: ignore[union-attr]

    asyncio.run(asyncio.wait_for(main(), 10))


def test_shutdown_without_waiting_cancels() -> None:
    async def main() -> None:
        manager = AsyncTaskManager(max_workers=1)
        slow = Task("slow", "f", asyncio.sleep, (30,))
        await manager.submit_task(slow)
        await manager.shutdown(wait=False)
        assert slow.status is TaskStatus.CANCELLED

    asyncio.run(main())


def test_submit_takes_only_tasks() -> None:
    async def main() -> None:
        manager = AsyncTaskManager()
        with pytest.raises(TypeError, match=r"takes an async_task_manager\.Task"):
            await manager.submit_task("job")  # type: ignore[arg-type]
        await manager.shutdown()

    asyncio.run(main())


def test_manager_is_the_unified_task_manager_read_only() -> None:
    async def main() -> None:
        manager = AsyncTaskManager(max_workers=2)
        assert isinstance(manager.manager, UnifiedTaskManager)
        assert manager.manager.max_concurrent_tasks == 2
        await manager.submit_task(Task("t", "focus", parse, ("abc",)))
        assert [t.task_id for t in manager.manager.get_tasks_by_tag("focus:focus")] == ["t"]
        with pytest.raises(AttributeError):
            manager.manager = UnifiedTaskManager  # type: ignore[misc,assignment]
        await manager.shutdown()

    asyncio.run(main())
