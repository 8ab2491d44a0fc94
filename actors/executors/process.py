"""ProcessExecutor: each attempt in a worker process, and a hard kill for a timeout or cancel.

The workers are a :class:`~actors.executors.pool.WorkerPool` of its own, started with
``spawn``. With ``prefetch``, attempts wait in a worker's pipe; their timeout counts
from their start, and cancelling one kills no worker.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from actors.core.call import Call, Done, ProgressSink, check_pickles
from actors.core.executor import MAX_WORKERS, Executor
from actors.executors.pool import WorkerPool
from actors.runtime.hosted import Dispatcher, ThreadPoolDispatcher
from supervision._validate import check_int

__all__ = ["ProcessExecutor"]

DEFAULT_PREFETCH = 4
"""Attempts queued behind each worker's running one by default: enough to keep a worker
busy between round trips; more would only commit attempts to the pool early (they leave
the manager's priority queue, and hold slots of max_concurrent_tasks)."""


class ProcessExecutor(Executor):
    """Runs each attempt in a worker process, ``max_workers`` at once (default: the cpu
    count). A timeout or cancel kills the attempt's worker; a fresh one replaces it.

    The function and its arguments must pickle (checked at registration); a coroutine
    function runs on an event loop in the worker. ``current_task()`` works in the worker
    (``task_id``, ``attempt``, ``report_progress``). A worker that dies (``os._exit``, a
    signal, out of memory) ends its attempt with TaskExecutionError, retried under the
    task's policy. Each worker is a process group of its own (a kill reaches the task's
    children) and dies with the manager.
    """

    kind = "process"
    runs_elsewhere = True

    enforces_timeouts = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        name: str | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = min(os.cpu_count() or 1, MAX_WORKERS)
        check_int(
            "max_workers",
            max_workers,
            minimum=1,
            maximum=MAX_WORKERS,
            why="each is a Python process of its own, with its memory and its pipes",
        )
        check_int("prefetch", prefetch, minimum=0, maximum=1000)
        super().__init__(name)
        self.max_workers = max_workers
        self.prefetch = prefetch
        self._pool: WorkerPool | None = None
        self._report: ProgressSink | None = None

    @property
    def capacity(self) -> int:
        return self.max_workers

    @classmethod
    def check_call(
        cls, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None
    ) -> None:
        check_pickles(func, args, kwargs)

    def create_dispatcher(self) -> Dispatcher:
        # Hosts the task actors, which only hand calls over and record outcomes.
        return ThreadPoolDispatcher(min(2, self.max_workers), name=f"{self.name}-worker")

    def open(self) -> None:
        super().open()
        with self._lock:
            if self._pool is not None or self._closed:
                return
            pool = WorkerPool(
                self.max_workers, 1 + self.prefetch, name=self.name, report=self._progressed
            )
            pool.start()
            self._pool = pool

    def _progressed(self, task_id: str, attempt: int, fraction: float, message: str) -> None:
        """Progress from a worker (on the pool's reader thread), to the store."""
        report = self._report
        if report is not None:
            report(task_id, attempt, fraction, message)

    def _start_call(self, call: Call, report: ProgressSink, done: Done) -> Callable[[], None]:
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"executor {self.name} is not open")
        self._report = report  # the same sink for every call: the store's
        return functools.partial(pool.let_go, pool.submit(call, done))

    def close(self, *, wait: bool = True) -> None:
        super().close(wait=wait)
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()  # a stopping system cancelled its work

    def __repr__(self) -> str:
        return f"ProcessExecutor({self.max_workers}, prefetch={self.prefetch}, name={self.name!r})"
