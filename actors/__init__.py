"""A unified task manager on supervised pykka actors.

Tasks with priorities, dependencies, retries, timeouts, cancellation and progress run as
supervised actors: a scheduler actor tracks dependencies and concurrency slots, executor
actors wrap a thread pool, one thread, or an asyncio loop, and failures travel as typed
messages that map onto the TaskError subclasses.
"""

from __future__ import annotations

from actors import messages
from actors._context import TaskContext, current_task
from actors._dask import DaskExecutor
from actors._event_log import JsonLinesEventLog
from actors._executors import (
    AsyncExecutor,
    Executor,
    SequentialExecutor,
    ThreadPoolExecutor,
)
from actors._manager import TaskManager
from actors._process import ProcessExecutor
from actors._runtime import AsyncioDispatcher, Dispatcher, HostedActor, ThreadPoolDispatcher
from actors._system import ActorSystem
from actors._task import Task, TaskPriority, TaskStatus
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
    "SequentialExecutor",
    "Task",
    "TaskCancellationError",
    "TaskContext",
    "TaskDependencyError",
    "TaskError",
    "TaskExecutionError",
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
