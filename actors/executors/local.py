"""The executors that run tasks in this process: a thread pool, one thread, an event loop."""

from __future__ import annotations

import asyncio
import os

from actors.core.executor import MAX_WORKERS, Executor
from actors.runtime.hosted import AsyncioDispatcher, Dispatcher, ThreadPoolDispatcher
from supervision._validate import check_flag, check_int, show

__all__ = ["AsyncExecutor", "SequentialExecutor", "ThreadPoolExecutor"]


class ThreadPoolExecutor(Executor):
    """Runs sync functions on a pool of ``max_workers`` threads (default: min(32, cpus+4)).

    Coroutine functions given to it run on the system's event loop instead: they never
    block a pool thread. ``interrupt=False``: a timeout or cancel only sets the task's
    ``cancelled`` flag (see ``Executor.interrupts_threads``).
    """

    kind = "thread_pool"

    def __init__(
        self, max_workers: int | None = None, *, name: str | None = None, interrupt: bool = True
    ) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        check_int(
            "max_workers",
            max_workers,
            minimum=1,
            maximum=MAX_WORKERS,
            why="each is a thread with a stack of its own; for thousands of waits, use an "
            "AsyncExecutor",
        )
        check_flag("interrupt", interrupt)
        super().__init__(name)
        self.max_workers = max_workers
        self.interrupts_threads = interrupt

    @property
    def capacity(self) -> int:
        return self.max_workers

    def create_dispatcher(self) -> Dispatcher:
        return ThreadPoolDispatcher(self.max_workers, name=f"{self.name}-worker")


class SequentialExecutor(Executor):
    """Runs one task at a time, in the order the scheduler starts them, on one thread.

    ``interrupt=False``: as for ThreadPoolExecutor.
    """

    kind = "sequential"

    def __init__(self, *, name: str | None = None, interrupt: bool = True) -> None:
        check_flag("interrupt", interrupt)
        super().__init__(name)
        self.interrupts_threads = interrupt

    @property
    def capacity(self) -> int:
        return 1

    def create_dispatcher(self) -> Dispatcher:
        return ThreadPoolDispatcher(1, name=f"{self.name}-worker")


class AsyncExecutor(Executor):
    """Runs coroutine functions on an event loop, ``max_concurrency`` at once.

    ``loop`` pins the loop (the application's): coroutines run there as
    ``asyncio.create_task`` would run them, so a lock, queue, session or connection made
    on that loop works inside them. Without one, a system's default "async" executor
    takes the loop its manager was started from (``await tm.start()``, ``async with``,
    the first ``execute_task``), and otherwise runs a loop in a thread of its own (a sync
    application can use it). Sync functions given to it run on a thread pool of its own
    with ``max_concurrency`` threads (started as needed), never on a loop thread: every
    slot it reports is a slot it can run.
    """

    kind = "async"

    def __init__(
        self,
        max_concurrency: int = 100,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str | None = None,
    ) -> None:
        check_int("max_concurrency", max_concurrency, minimum=1)
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"loop must be an asyncio event loop, got {show(loop)}")
        super().__init__(name)
        self.max_concurrency = max_concurrency
        self.loop = loop
        """The loop coroutines run on, if pinned (else: the dispatcher's own, once open)."""
        self._sync_pool: ThreadPoolDispatcher | None = None

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Run on ``loop`` (the application's), if no loop is pinned and none runs yet."""
        with self._lock:
            if self.loop is not None or self._dispatcher is not None or self._closed:
                return False
            self.loop = loop
            return True

    @property
    def capacity(self) -> int:
        return self.max_concurrency

    def create_dispatcher(self) -> Dispatcher:
        return AsyncioDispatcher(name=f"{self.name}-loop", loop=self.loop)

    def _dispatcher_for(self, coroutine: bool) -> Dispatcher | None:
        if coroutine:
            return super()._dispatcher_for(coroutine)
        with self._lock:
            if self._sync_pool is None:
                if self._closed or self._dispatcher is None:
                    raise RuntimeError(f"executor {self.name} is not open")
                self._sync_pool = ThreadPoolDispatcher(
                    self.max_concurrency, name=f"{self.name}-worker"
                )
            return self._sync_pool

    def close(self, *, wait: bool = True) -> None:
        super().close(wait=wait)
        with self._lock:
            pool, self._sync_pool = self._sync_pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    @property
    def loop_dispatcher(self) -> AsyncioDispatcher:
        """The loop (opened on first use: the system's coroutines may need it early)."""
        self.open()
        dispatcher = self._dispatcher
        if dispatcher is None:  # closed in between
            raise RuntimeError(f"executor {self.name} was shut down")
        assert isinstance(dispatcher, AsyncioDispatcher)
        return dispatcher
