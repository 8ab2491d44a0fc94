"""The old ``core/task/async_task_manager.py`` API on the unified TaskManager.

Tasks belong to a focus point; their ``status``, ``result`` and ``error`` read the unified
manager's live state. Replaced by :class:`actors.TaskManager` (tags for focus ids).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from actors.compat._deprecation import warn_deprecated
from actors.core.task import TaskStatus
from actors.errors import TaskError
from actors.manager import TaskManager as UnifiedTaskManager

__all__ = ["AsyncTaskManager", "Task", "TaskStatus"]


class Task:
    """A focus point's task. ``status``/``result``/``error`` stay up to date once submitted.

    ``auto_shutdown``: once this task has ended, the manager shuts down (after the tasks
    submitted before it end too).
    """

    def __init__(
        self,
        task_id: str,
        focus_id: str,
        function: Callable[..., Any],
        args: Iterable[Any] = (),
        auto_shutdown: bool = False,
    ) -> None:
        self.task_id = task_id
        self.focus_id = focus_id
        self.function = function
        self.args = tuple(args)
        self.auto_shutdown = auto_shutdown
        self._manager: UnifiedTaskManager | None = None

    @property
    def status(self) -> TaskStatus:
        if self._manager is None:
            return TaskStatus.PENDING
        return self._manager.get_task_status(self.task_id) or TaskStatus.PENDING

    @property
    def result(self) -> Any:
        return None if self._manager is None else self._manager.get_task_result(self.task_id)

    @property
    def error(self) -> TaskError | None:
        return None if self._manager is None else self._manager.get_task_error(self.task_id)

    def __repr__(self) -> str:
        return f"Task({self.task_id!r}, focus_id={self.focus_id!r}, status={self.status.name})"


class AsyncTaskManager:
    """The old AsyncTaskManager: tasks per focus point, run ``max_workers`` at a time.

    Each instance has its own unified TaskManager, ``.manager``. Every construction warns
    DeprecationWarning (at the caller's line).
    """

    def __init__(self, max_workers: int = 4) -> None:
        warn_deprecated(
            "actors.compat.async_task_manager.AsyncTaskManager",
            'actors.TaskManager (tags=[f"focus:{focus_id}"])',
        )
        self.max_workers = max_workers
        self._manager = UnifiedTaskManager(max_concurrent_tasks=max_workers)
        self._tasks: dict[str, Task] = {}
        self._shutdowns: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()
        """Set once ``shutdown`` has finished (an ``auto_shutdown`` task triggers one)."""

    @property
    def manager(self) -> UnifiedTaskManager:
        """The unified :class:`actors.TaskManager` doing the work (read-only).

        For code migrating call by call: its tasks are the ones submitted here, tagged
        ``focus:<focus_id>``.
        """
        return self._manager

    async def submit_task(self, task: Task) -> str:
        """Run ``task.function(*task.args)`` (a coroutine function or a plain one)."""
        if not isinstance(task, Task):
            raise TypeError(f"submit_task takes an async_task_manager.Task, got {task!r}")
        task_id = self._manager.register_task(
            task.task_id,
            task.function,
            *task.args,
            task_id=task.task_id,
            tags=[f"focus:{task.focus_id}"],
            metadata={"focus_id": task.focus_id},
        )
        task._manager = self._manager
        self._tasks[task_id] = task
        await self._manager.start()
        if task.auto_shutdown:
            waiter = asyncio.ensure_future(self._shutdown_after(task_id))
            self._shutdowns.add(waiter)
            waiter.add_done_callback(self._shutdowns.discard)
        return task_id

    async def _shutdown_after(self, task_id: str) -> None:
        with contextlib.suppress(TaskError):
            await self._manager.execute_task(task_id)
        await self.shutdown(wait=True)

    def get_task(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def get_tasks_by_focus(self, focus_id: str) -> list[Task]:
        return [t for t in self._tasks.values() if t.focus_id == focus_id]

    async def shutdown(self, wait: bool = True) -> None:
        """Stop. ``wait``: let submitted tasks end first; otherwise they are cancelled."""
        if wait:
            futures = [
                asyncio.wrap_future(self._manager.future(task_id)) for task_id in self._tasks
            ]
            await asyncio.gather(*futures, return_exceptions=True)
        await self._manager.stop()
        self.closed.set()
