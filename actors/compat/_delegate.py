"""The reading and cancelling calls the old managers shared, delegated to the unified one."""

from __future__ import annotations

from typing import Any

from actors.core.task import Task, TaskStatus
from actors.errors import TaskError, TaskNotFoundError
from actors.manager import TaskManager as UnifiedTaskManager

__all__ = ["ReadsTasks"]


class ReadsTasks:
    """Getters with the old semantics (None for unknown ids) and a cancel that says False."""

    _manager: UnifiedTaskManager

    @property
    def manager(self) -> UnifiedTaskManager:
        """The unified :class:`actors.TaskManager` doing the work (read-only).

        For code migrating call by call: tasks registered through either API are the same
        tasks. Stop through the compat object, so the next constructor call makes a new one.
        """
        return self._manager

    def _cancel(self, task_id: str) -> bool:
        """Cancel a task; False if it had already finished or is unknown (the old answer)."""
        try:
            return self._manager.cancel_task_sync(task_id)
        except TaskNotFoundError:
            return False

    def get_task(self, task_id: str) -> Task | None:
        return self._manager.get_task(task_id)

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        return self._manager.get_task_status(task_id)

    def get_task_result(self, task_id: str) -> Any:
        return self._manager.get_task_result(task_id)

    def get_task_error(self, task_id: str) -> TaskError | None:
        return self._manager.get_task_error(task_id)

    def get_all_tasks(self) -> dict[str, Task]:
        """Every task by id: snapshots of the live state, taken now."""
        return {t.task_id: t for t in self._manager.get_all_tasks()}
