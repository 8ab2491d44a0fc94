"""A unified task manager on supervised pykka actors.

Tasks with priorities, dependencies, retries, timeouts, cancellation and progress run as
supervised actors: a scheduler actor tracks dependencies and concurrency slots, executor
actors wrap a thread pool, one thread, or an asyncio loop, and failures travel as typed
messages that map onto the TaskError subclasses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from actors import messages
from actors.core.context import TaskContext, current_task
from actors.core.executor import Executor
from actors.core.retention import TaskId
from actors.core.schedules import ScheduleInfo
from actors.core.task import Task, TaskPriority, TaskStatus
from actors.errors import (
    InvalidTaskStateError,
    JournalError,
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskExecutionError,
    TaskNotFoundError,
    TaskTimeoutError,
)
from actors.executors.local import AsyncExecutor, SequentialExecutor, ThreadPoolExecutor
from actors.handle import Submitter, TaskHandle
from actors.manager import TaskManager
from actors.runtime.hosted import AsyncioDispatcher, Dispatcher, HostedActor, ThreadPoolDispatcher
from actors.system import ActorSystem

if TYPE_CHECKING:
    from actors.executors.dask import DaskExecutor
    from actors.executors.process import ProcessExecutor
    from actors.observe.event_log import JsonLinesEventLog

# Imported on first use (as concurrent.futures does with its process pool): the process
# pool's multiprocessing and Dask's client are not paid for by a program that never uses them.
_LAZY = {
    "DaskExecutor": "actors.executors.dask",
    "JsonLinesEventLog": "actors.observe.event_log",
    "ProcessExecutor": "actors.executors.process",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ActorSystem",
    "AsyncExecutor",
    "AsyncioDispatcher",
    "DaskExecutor",
    "Dispatcher",
    "Executor",
    "HostedActor",
    "InvalidTaskStateError",
    "JournalError",
    "JsonLinesEventLog",
    "ProcessExecutor",
    "ScheduleInfo",
    "SequentialExecutor",
    "Submitter",
    "Task",
    "TaskCancellationError",
    "TaskContext",
    "TaskDependencyError",
    "TaskError",
    "TaskExecutionError",
    "TaskHandle",
    "TaskId",
    "TaskManager",
    "TaskNotFoundError",
    "TaskPriority",
    "TaskStatus",
    "TaskTimeoutError",
    "ThreadPoolDispatcher",
    "ThreadPoolExecutor",
    "current_task",
    "messages",
]
