"""The old ``core/task_manager.py`` API on the unified TaskManager.

``TaskManager()`` returns the process's one shared instance, as before, until that
instance is stopped (``await stop()``, or ``TaskManager.reset_instance()`` for tests): the
next ``TaskManager()`` is a new one. Replaced by :class:`actors.TaskManager`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from actors.compat._delegate import ReadsTasks
from actors.compat._deprecation import warn_deprecated
from actors.core import messages
from actors.core.context import shielded
from actors.core.task import Task, TaskPriority, TaskStatus
from actors.errors import TaskDependencyError
from actors.manager import TaskManager as UnifiedTaskManager
from supervision._validate import check_int

__all__ = ["Task", "TaskDependencyError", "TaskManager", "TaskPriority", "TaskStatus"]


class TaskManager(ReadsTasks):
    """The old TaskManager: one per process, sync registration, async start/stop.

    ``TaskManager()`` returns the shared instance, making it on the first call and on the
    first call after it was stopped (``stop()`` or ``reset_instance()``; stop through this
    object, not through ``.manager``, for that to hold). ``max_concurrent_tasks`` sizes a
    new instance (4 if not given). Given to a call that returns the existing instance, it
    must be that instance's size: a different one raises ValueError naming both, where the
    old class silently kept the first size. ``.manager`` is the unified TaskManager doing
    the work.

    Every construction warns DeprecationWarning (at the caller's line).
    """

    _instance: ClassVar[TaskManager | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()
    _manager: UnifiedTaskManager

    def __new__(cls, max_concurrent_tasks: int | None = None) -> TaskManager:
        warn_deprecated("actors.compat.task_manager.TaskManager", "actors.TaskManager")
        if max_concurrent_tasks is not None:
            check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        with cls._instance_lock:
            instance = cls._instance
            if instance is None:
                instance = super().__new__(cls)
                instance._manager = UnifiedTaskManager(
                    max_concurrent_tasks=4 if max_concurrent_tasks is None else max_concurrent_tasks
                )
                cls._instance = instance
            elif (
                max_concurrent_tasks is not None
                and max_concurrent_tasks != instance._manager.max_concurrent_tasks
            ):
                raise ValueError(
                    f"TaskManager(max_concurrent_tasks={max_concurrent_tasks}): the shared "
                    f"instance runs {instance._manager.max_concurrent_tasks} tasks at once; "
                    "call TaskManager() without a size to use it, or stop it first"
                )
            return instance

    @classmethod
    def reset_instance(cls, timeout: float = 10.0) -> None:
        """Stop the shared instance (cancelling what has not finished) and forget it."""
        with cls._instance_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None:
            instance._manager.stop_sync(timeout)

    def _forget(self) -> None:
        """Stop handing this instance out: the next ``TaskManager()`` makes a new one."""
        with self._instance_lock:
            if TaskManager._instance is self:
                TaskManager._instance = None

    @shielded
    def register_task(
        self,
        name: str,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        dependencies: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        task_id: str | None = None,
    ) -> str:
        """Register a task; the function's arguments come as ``args`` and ``kwargs``."""
        # The old parameters are SubmitTask's first ten fields, in its order.
        request = messages.SubmitTask(
            name,
            func,
            args,
            kwargs,
            priority,
            () if dependencies is None else dependencies,
            max_retries,
            retry_delay,
            timeout,
            task_id,
            executor=self._manager.default_executor_type,
        )
        return self._manager._register(request)

    async def start(self) -> None:
        await self._manager.start()

    async def stop(self) -> None:
        """Cancel what has not finished and stop; the next ``TaskManager()`` is a new one."""
        self._forget()
        await self._manager.stop()

    async def execute_task(self, task_id: str) -> Any:
        return await self._manager.execute_task(task_id)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a task; False if it had already finished or is unknown."""
        return self._cancel(task_id)

    def _by_status(self, status: TaskStatus) -> dict[str, Task]:
        return {t.task_id: t for t in self._manager.get_tasks_by_status(status)}

    def get_pending_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.PENDING)

    def get_running_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.RUNNING)

    def get_completed_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.COMPLETED)

    def get_failed_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.FAILED)

    def get_cancelled_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.CANCELLED)

    def get_waiting_tasks(self) -> dict[str, Task]:
        return self._by_status(TaskStatus.WAITING)

    def get_metrics(self) -> dict[str, Any]:
        return self._manager.get_metrics()
