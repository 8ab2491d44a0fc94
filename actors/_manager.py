"""TaskManager: the one API for registering, running, waiting on and cancelling tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from actors import messages
from actors._executors import Executor
from actors._system import ActorSystem
from actors._task import Task, TaskPriority, TaskStatus
from actors.errors import TaskError
from supervision._validate import check_int, show

__all__ = ["TaskManager"]


class TaskManager:
    """Runs tasks with priorities, dependencies, retries, timeouts, cancellation, progress.

    ::

        async with TaskManager(max_concurrent_tasks=4) as tm:
            fetch = tm.register_task("fetch", fetch_page, "https://example.org")
            parse = tm.register_task("parse", parse_page, dependencies=[fetch])
            result = await tm.execute_task(parse)

    Registration is safe from any thread, before or after ``start``. Once started, every
    registered task whose dependencies COMPLETED runs, highest priority first (equal
    priorities in registration order), within ``max_concurrent_tasks`` and each
    executor's capacity.

    Args:
        max_concurrent_tasks: attempts running at once, over all executors.
        default_executor_type: "auto" (coroutine functions on the asyncio executor, the
            rest on the thread pool), "async", "thread_pool", "sequential", an executor
            name, or an Executor.
        system: the ActorSystem to run on; by default the manager makes its own, starts
            it at ``start()`` and shuts it down at ``stop()``.
    """

    def __init__(
        self,
        max_concurrent_tasks: int = 4,
        default_executor_type: str | Executor = "auto",
        system: ActorSystem | None = None,
    ) -> None:
        check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        if system is not None and not isinstance(system, ActorSystem):
            raise TypeError(f"system must be an ActorSystem, got {system!r}")
        self._owns_system = system is None
        self._system = system or ActorSystem(
            max_concurrent_tasks=max_concurrent_tasks, autostart=False
        )
        # Checked now, so that a typo fails here and not at the first registration.
        if not isinstance(default_executor_type, Executor):
            if not isinstance(default_executor_type, str):
                raise TypeError(
                    "default_executor_type must be a string or an Executor, "
                    f"got {default_executor_type!r}"
                )
            if default_executor_type != "auto":
                self._system.resolve_executor(default_executor_type, _noop)
        self._system.store.max_concurrent = max_concurrent_tasks
        self.max_concurrent_tasks = max_concurrent_tasks
        self.default_executor_type = default_executor_type
        self._store = self._system.store
        self._started = False
        self._stopped = False

    @property
    def system(self) -> ActorSystem:
        return self._system

    # -- registration -------------------------------------------------------------------------

    def register_task(
        self,
        name: str | None = None,
        func: Callable[..., Any] | None = None,
        *func_args: Any,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        dependencies: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        description: str = "",
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        executor_type: str | Executor | None = None,
    ) -> str:
        """Register a task and return its id. Safe from any thread.

        ``register_task("name", func, arg1, arg2, kwargs={...})`` or
        ``register_task(name="name", func=func, args=(arg1, arg2))``: the function's
        positional arguments come after it, or as ``args=`` (the older spelling).

        Raises (and registers nothing): TypeError/ValueError for bad arguments (a
        non-callable func, a negative timeout, max_retries or retry_delay, an unknown
        executor type), TaskDependencyError for an unknown dependency or a cycle,
        ValueError for a task_id already taken.
        """
        if name is None:
            raise TypeError("register_task() needs a name")
        if func is None:
            raise TypeError("register_task() needs a func")
        if func_args and args is not None:
            raise TypeError(
                "give the function's positional arguments after func or as args=, not both"
            )
        if args is not None and not isinstance(args, tuple | list):
            raise TypeError(f"args must be a tuple or list, got {show(args)}")
        if self._stopped:
            raise RuntimeError("the task manager is stopped")
        # The SubmitTask fields as arguments: no message object on this path.
        return self._system._submit_fields(
            name=name,
            func=func,
            args=args if args is not None else func_args,
            kwargs=kwargs,
            priority=priority,
            dependencies=() if dependencies is None else dependencies,  # type: ignore[arg-type]
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            task_id=task_id,
            description=description,
            tags=() if tags is None else tags,  # type: ignore[arg-type]
            metadata=metadata,
            executor=self.default_executor_type if executor_type is None else executor_type,
        )

    # -- life cycle -----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._started and not self._stopped

    async def start(self) -> None:
        """Start running tasks. Idempotent; ``execute_task`` and ``future`` also start."""
        self.start_sync()

    def start_sync(self) -> None:
        """``start()`` for code without an event loop."""
        if self._stopped:
            raise RuntimeError("the task manager is stopped; make a new one")
        if self._started:
            return
        self._system.start()
        self._started = True
        self._system.scheduler.tell(messages.Start())

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel what has not finished and wait (up to ``timeout`` s) for running work.

        Idempotent. A manager that made its own system shuts it down: no thread is left.
        """
        if self._stopped:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.stop_sync, timeout)

    def stop_sync(self, timeout: float = 10.0) -> None:
        """``stop()`` for code without an event loop."""
        if self._stopped:
            return
        self._stopped = True
        if self._owns_system:
            self._system.shutdown(wait_for_tasks=timeout)
            return
        for task in self._store.snapshots(lambda t: not t.done):
            self._system.cancel(task.task_id)
        with contextlib.suppress(TimeoutError):
            self._store.when_idle().result(timeout=timeout)

    async def __aenter__(self) -> TaskManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- waiting and cancelling --------------------------------------------------------------

    async def execute_task(self, task_id: str) -> Any:
        """Wait for the task's outcome: its result, or raise the TaskError it ended with.

        Starts the manager if needed. Raises TaskNotFoundError for an unknown id.
        """
        future = self.future(task_id)
        return await asyncio.wrap_future(future)

    def future(self, task_id: str) -> concurrent.futures.Future[Any]:
        """A concurrent.futures.Future of the task's outcome, for code without asyncio.

        Starts the manager if needed. The future cannot be cancelled through itself:
        use ``cancel_task``.
        """
        future = self._store.future(task_id)
        if not self._started and not self._stopped:
            self.start_sync()
        return future

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel the task; True if it ended CANCELLED because of this call.

        A waiting or pending task ends at once; a running one is interrupted (its
        ``current_task().cancelled`` turns True) and ends CANCELLED at once. False for a
        task that had already finished. Raises TaskNotFoundError for an unknown id.
        """
        return self.cancel_task_sync(task_id)

    def cancel_task_sync(self, task_id: str) -> bool:
        """``cancel_task()`` for code without an event loop."""
        return self._system.cancel(task_id)

    # -- reading ------------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task | None:
        """A snapshot of the task (safe to read, changes nothing), or None."""
        return self._store.snapshot(task_id)

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        return self._store.status(task_id)

    def get_task_result(self, task_id: str) -> Any:
        """The result if the task COMPLETED, else None."""
        task = self._store.snapshot(task_id)
        return task.result if task is not None and task.status is TaskStatus.COMPLETED else None

    def get_task_error(self, task_id: str) -> TaskError | None:
        """The TaskError if the task ended FAILED or CANCELLED, else None."""
        task = self._store.snapshot(task_id)
        if task is None or task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return None
        return task.error

    def get_task_progress(self, task_id: str) -> tuple[float, str] | None:
        """(fraction 0..1, message), or None for an unknown id."""
        task = self._store.snapshot(task_id)
        return None if task is None else (task.progress, task.progress_message)

    def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        return self._store.snapshots(lambda t: t.status is status)

    def get_tasks_by_tag(self, tag: str) -> list[Task]:
        return self._store.snapshots(lambda t: tag in t.tags)

    def get_all_tasks(self) -> list[Task]:
        return self._store.snapshots()

    def get_metrics(self) -> dict[str, Any]:
        """Counts by status (the old keys), whether it runs, and each executor's load.

        ``abandoned_tasks`` (and each executor's ``abandoned``) counts work still running
        whose attempt already ended: a thread stuck in a C call past its timeout or
        cancel. It holds its slot (in ``busy``) until the call returns.
        """
        counts = self._store.counts()
        abandoned = self._store.abandoned()
        return {
            "is_running": self.is_running,
            "total_tasks": sum(counts.values()),
            "pending_tasks": counts[TaskStatus.PENDING],
            "running_tasks": counts[TaskStatus.RUNNING],
            "completed_tasks": counts[TaskStatus.COMPLETED],
            "failed_tasks": counts[TaskStatus.FAILED],
            "cancelled_tasks": counts[TaskStatus.CANCELLED],
            "waiting_tasks": counts[TaskStatus.WAITING],
            "abandoned_tasks": sum(abandoned.values()),
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "executors": {
                name: {
                    "type": executor.kind,
                    "capacity": executor.capacity,
                    "busy": self._store.busy(name),
                    "abandoned": abandoned[name],
                }
                for name, executor in self._system.executors.items()
            },
        }


def _noop() -> None:
    return None
