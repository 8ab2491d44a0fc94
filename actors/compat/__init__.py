"""The old WiseFlow task-manager APIs, kept working on top of the unified TaskManager.

Switch the import, keep the calls, migrate at your own pace (see docs/guides/migration.md):

- ``actors.compat.task_manager``: the old ``core/task_manager.py`` TaskManager.
- ``actors.compat.thread_pool_manager``: the old ThreadPoolManager, usable from plain threads.
- ``actors.compat.async_task_manager``: the old AsyncTaskManager and its focus-point Task.
- ``actors.compat.run_task``: the jobs of the old run_task scripts as small helpers.

Every construction and every helper call warns DeprecationWarning, naming the replacement
(the warnings filters decide how often it shows). Each manager exposes the unified
TaskManager it delegates to as ``.manager``; none has a scheduler or a thread pool of its
own: all work goes to the unified TaskManager and its executors.
"""

from __future__ import annotations

__all__: list[str] = []
