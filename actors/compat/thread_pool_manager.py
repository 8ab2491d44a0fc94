"""The old ``core/thread_pool_manager.py`` API on the unified TaskManager's thread pool.

Works from plain threads: no event loop is needed anywhere. Replaced by
:class:`actors.TaskManager` with ``default_executor_type="thread_pool"`` and ``future()``.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from actors.compat._delegate import ReadsTasks
from actors.compat._deprecation import warn_deprecated
from actors.core.task import TaskPriority, TaskStatus
from actors.manager import TaskManager as UnifiedTaskManager
from supervision._validate import check_int

__all__ = ["TaskPriority", "TaskStatus", "ThreadPoolManager"]


class ThreadPoolManager(ReadsTasks):
    """The old ThreadPoolManager: one per process; ``submit`` starts work at once.

    ``ThreadPoolManager()`` returns the shared pool, making it on the first call and on the
    first call after ``shutdown()``. ``max_workers`` sizes a new pool (the CPU count if not
    given). Given to a call that returns the existing pool, it must be that pool's size: a
    different one raises ValueError naming both sizes, where the old class silently kept
    the first (a pool smaller than asked for is a bug to see at once, not a slowdown to
    find later); ``ThreadPoolManager()`` without a size always returns the existing pool.
    ``.manager`` is the unified TaskManager doing the work.

    Every construction warns DeprecationWarning (at the caller's line).
    """

    _instance: ClassVar[ThreadPoolManager | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()
    _manager: UnifiedTaskManager
    max_workers: int

    def __new__(cls, max_workers: int | None = None) -> ThreadPoolManager:
        warn_deprecated(
            "actors.compat.thread_pool_manager.ThreadPoolManager",
            'actors.TaskManager(default_executor_type="thread_pool") and TaskManager.future()',
        )
        if max_workers is not None:
            check_int("max_workers", max_workers, minimum=1)
        with cls._instance_lock:
            instance = cls._instance
            if instance is None:
                workers = max_workers or os.cpu_count() or 1
                instance = super().__new__(cls)
                instance.max_workers = workers
                instance._manager = UnifiedTaskManager(
                    max_concurrent_tasks=workers, default_executor_type="thread_pool"
                )
                instance._manager.start_sync()
                cls._instance = instance
            elif max_workers is not None and max_workers != instance.max_workers:
                raise ValueError(
                    f"ThreadPoolManager(max_workers={max_workers}): the shared pool already "
                    f"has max_workers={instance.max_workers}; call ThreadPoolManager() "
                    "without a size to use it, or shut it down first"
                )
            return instance

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
        with self._instance_lock:
            if ThreadPoolManager._instance is self:
                ThreadPoolManager._instance = None
        if wait:
            futures = [self._manager.future(t.task_id) for t in self._manager.get_all_tasks()]
            concurrent.futures.wait(futures, timeout=timeout)
        self._manager.stop_sync(timeout)
