"""ProcessExecutor: each attempt in a worker process, and a hard kill for a timeout or cancel.

The pool is pebble's ``ProcessPool``: unlike ``concurrent.futures.ProcessPoolExecutor``
(which cannot stop one running call) and loky (which reuses workers, with no per-call
kill), cancelling one of its running futures terminates that worker (SIGTERM, then
SIGKILL after a grace period) and a fresh worker takes its place. Workers are started
with ``spawn``: forking a process that runs threads (actors, timers) can copy a lock
held by another thread and hang the child.

Progress reported inside a worker crosses one pipe per executor to a thread the executor
owns (its *progress reader*), which hands it to the task store. Outcomes pass through that
thread too, after the progress sent before them: pebble's thread that receives a result
queues it and writes a marker into the same pipe, so the progress a worker reported
before it returned is in the store before the task ends (and not dropped as late).
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pebble

from actors._executors import Executor
from actors._remote import MAX_MESSAGE_CHARS, Call, ProgressSink, check_pickles, run_call
from actors._runtime import Dispatcher, ThreadPoolDispatcher
from actors.errors import TaskExecutionError
from supervision._log import get_logger
from supervision._validate import check_int

__all__ = ["ProcessExecutor"]

_log = get_logger("actors")

# In a worker process: the write end of its executor's progress pipe.
_progress: multiprocessing.connection.Connection | None = None
_OUTCOME = "outcome"  # in the pipe: the next queued outcome is due


def _start_worker(progress: multiprocessing.connection.Connection) -> None:
    """Pebble's initializer, in each new worker: keep the progress pipe; let SIGINT (a
    Ctrl-C at the terminal reaches the whole process group) to the manager only."""
    global _progress
    _progress = progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _send_progress(task_id: str, attempt: int, fraction: float, message: str) -> None:
    if _progress is not None:
        _progress.send((task_id, attempt, fraction, message[:MAX_MESSAGE_CHARS]))


def _run_in_worker(call: Call) -> Any:
    """What a worker runs for one attempt (in the worker process)."""
    return run_call(call, functools.partial(_send_progress, call.task_id, call.attempt))


class ProcessExecutor(Executor):
    """Runs each attempt in a worker process, ``max_workers`` at once (default: the cpu
    count). A timeout or cancel kills the attempt's worker; a fresh one replaces it.

    The function and its arguments must pickle (checked at registration); a coroutine
    function runs on an event loop in the worker. ``current_task()`` works in the worker
    (``task_id``, ``attempt``, ``report_progress``). A worker that dies (``os._exit``, a
    signal, out of memory) ends its attempt with TaskExecutionError, retried under the
    task's policy.
    """

    kind = "process"
    runs_elsewhere = True

    def __init__(self, max_workers: int | None = None, *, name: str | None = None) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        check_int("max_workers", max_workers, minimum=1)
        super().__init__(name)
        self.max_workers = max_workers
        self._pool: pebble.ProcessPool | None = None
        self._reader: threading.Thread | None = None
        self._pipe_in: multiprocessing.connection.Connection | None = None
        self._pipe_out: multiprocessing.connection.Connection | None = None
        self._report: ProgressSink | None = None
        # Outcomes pebble's threads hand to the progress reader (one marker each).
        self._outcomes: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

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
            pipe_in, pipe_out = multiprocessing.Pipe(duplex=False)
            self._pipe_in, self._pipe_out = pipe_in, pipe_out
            self._pool = self._new_pool()
            self._reader = threading.Thread(
                target=self._read_progress,
                args=(pipe_in,),
                name=f"{self.name}-progress",
                daemon=True,
            )
            self._reader.start()

    def _new_pool(self) -> pebble.ProcessPool:
        return pebble.ProcessPool(
            self.max_workers,
            initializer=_start_worker,
            initargs=(self._pipe_out,),
            context=multiprocessing.get_context("spawn"),
        )

    def _working_pool(self) -> pebble.ProcessPool:
        """The pool; a new one if pebble gave the old one up (it does when every worker
        dies at once, even idle ones: a pool that cannot recover is worth replacing)."""
        pool = self._pool
        if pool is not None and pool.active:
            return pool
        with self._lock:
            if self._pool is None or self._closed:
                raise RuntimeError(f"executor {self.name} is not open")
            broken = None
            if self._pool is pool:
                broken, self._pool = pool, self._new_pool()
                _log.warning("executor.pool_replaced", executor=self.name)
            pool = self._pool
        if broken is not None:
            broken.stop()  # type: ignore[no-untyped-call]
            threading.Thread(target=broken.join, name=f"{self.name}-join", daemon=True).start()
        return pool

    def _read_progress(self, pipe: multiprocessing.connection.Connection) -> None:
        """The progress reader's loop (its own thread): worker progress to the store."""
        while True:
            try:
                update = pipe.recv()
            except (EOFError, OSError):
                return
            if update is None:
                return
            if update == _OUTCOME:
                self._outcomes.get_nowait()()
                continue
            report = self._report
            if report is not None:
                try:
                    report(*update)
                except Exception:  # noqa: BLE001 - one bad report never stops the reader
                    _log.error("progress.failed", executor=self.name, exc_info=True)

    def submit(self, call: Call, report: ProgressSink) -> concurrent.futures.Future[Any]:
        pool = self._working_pool()
        self._report = report  # the same sink for every call: the store's
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        running = pool.schedule(_run_in_worker, args=(call,))
        running.add_done_callback(functools.partial(self._returned, outcome, call))

        def stop_worker(settled: concurrent.futures.Future[Any]) -> None:
            if settled.cancelled():
                running.cancel()  # type: ignore[no-untyped-call]  # pebble kills its worker

        outcome.add_done_callback(stop_worker)
        return outcome

    def _returned(
        self,
        outcome: concurrent.futures.Future[Any],
        call: Call,
        running: concurrent.futures.Future[Any],
    ) -> None:
        """Pebble's future is done (on one of pebble's threads): pass the outcome on
        behind the progress already in the pipe."""
        settle = functools.partial(_settle, outcome, call, running)
        pipe = self._pipe_out
        if pipe is None or running.cancelled():
            settle()  # closing, or cancelled by us: no progress of it counts any more
            return
        self._outcomes.put(settle)
        try:
            pipe.send(_OUTCOME)
        except OSError:  # closed in between: the reader is gone
            self._outcomes.get_nowait()()

    def close(self, *, wait: bool = True) -> None:
        super().close(wait=wait)
        with self._lock:
            pool, self._pool = self._pool, None
            reader, self._reader = self._reader, None
            pipe_in, pipe_out = self._pipe_in, self._pipe_out
            self._pipe_in = self._pipe_out = None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]  # a stopping system cancelled its work
            pool.join()
        if pipe_out is not None:
            pipe_out.send(None)  # the reader's last message
        if reader is not None:
            reader.join()
        for pipe in (pipe_in, pipe_out):
            if pipe is not None:
                pipe.close()

    def __repr__(self) -> str:
        return f"ProcessExecutor({self.max_workers}, name={self.name!r})"


def _settle(
    outcome: concurrent.futures.Future[Any], call: Call, running: concurrent.futures.Future[Any]
) -> None:
    """The attempt's outcome from pebble's future (on the progress reader's thread)."""
    if running.cancelled():
        outcome.cancel()
        return
    error = running.exception()
    if isinstance(error, pebble.ProcessExpired):
        error = TaskExecutionError(
            f"task {call.task_name!r} ({call.task_id}): its worker process (pid {error.pid}) "
            f"died: {_exit_reason(error.exitcode)} (attempt {call.attempt})",
            call.task_id,
            {"attempt": call.attempt, "exitcode": error.exitcode, "pid": error.pid},
        )
    try:
        if error is None:
            outcome.set_result(running.result())
        else:
            outcome.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled already: the attempt was let go


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
