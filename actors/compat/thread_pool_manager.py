"""The old ``core/thread_pool_manager.py`` API on the unified TaskManager's thread pool.

Works from plain threads: no event loop is needed anywhere. Replaced by
:class:`actors.TaskManager` with ``executor_type="thread_pool"`` and ``future()``.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from actors._manager import TaskManager as UnifiedTaskManager
from actors._task import TaskPriority, TaskStatus
from actors.compat._delegate import ReadsTasks
from actors.compat._deprecation import warn_once

__all__ = ["TaskPriority", "TaskStatus", "ThreadPoolManager"]


class ThreadPoolManager(ReadsTasks):
    """The old ThreadPoolManager: one per process; ``submit`` starts work at once."""

    _instance: ClassVar[ThreadPoolManager | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()
    _manager: UnifiedTaskManager
    max_workers: int

    def __new__(cls, max_workers: int | None = None) -> ThreadPoolManager:
        warn_once(
            "actors.compat.thread_pool_manager.ThreadPoolManager",
            'actors.TaskManager(executor_type="thread_pool") and TaskManager.future()',
        )
        with cls._instance_lock:
            if cls._instance is None:
                workers = max_workers or os.cpu_count() or 1
                instance = super().__new__(cls)
                instance.max_workers = workers
                instance._manager = UnifiedTaskManager(
                    max_concurrent_tasks=workers, default_executor_type="thread_pool"
                )
                instance._manager.start_sync()
                cls._instance = instance
            return cls._instance

    @classmethod
    def reset_instance(cls) -> None:
        """Shut the shared instance down (without waiting) and forget it."""
        with cls._instance_lock:
            instance = cls._instance
        if instance is not None:
            instance.shutdown(wait=False)

    def submit(
        self,
        func: Callable[..., Any],
        *args: Any,
        task_id: str | None = None,
        name: str = "Unnamed Task",
        priority: TaskPriority | int = TaskPriority.NORMAL,
        **kwargs: Any,
    ) -> str:
        """Run ``func(*args, **kwargs)`` on the pool now; return the task id."""
        return self._manager.register_task(
            name, func, *args, kwargs=kwargs, task_id=task_id, priority=priority
        )

    def future(self, task_id: str) -> concurrent.futures.Future[Any]:
        """The outcome as a concurrent.futures.Future (new: the old API had none)."""
        return self._manager.future(task_id)

    def cancel(self, task_id: str) -> bool:
        """Cancel a task; False if it had already finished or is unknown."""
        return self._cancel(task_id)

    def get_metrics(self) -> dict[str, int]:
        metrics = self._manager.get_metrics()
        return {
            "worker_count": self.max_workers,
            "active_workers": metrics["running_tasks"],
            "queue_size": metrics["pending_tasks"] + metrics["waiting_tasks"],
            "completed_tasks": metrics["completed_tasks"],
            "failed_tasks": metrics["failed_tasks"],
            "cancelled_tasks": metrics["cancelled_tasks"],
        }

    def shutdown(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop the pool. ``wait``: let submitted work finish first (up to ``timeout`` s);
        otherwise unfinished work is cancelled. The next ``ThreadPoolManager()`` is new."""
        if wait:
            futures = [self._manager.future(t.task_id) for t in self._manager.get_all_tasks()]
            concurrent.futures.wait(futures, timeout=timeout)
        self._manager.stop_sync(timeout)
        with self._instance_lock:
            if ThreadPoolManager._instance is self:
                ThreadPoolManager._instance = None
