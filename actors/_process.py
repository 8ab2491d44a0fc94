"""ProcessExecutor: each attempt in a worker process, and a hard kill for a timeout or cancel.

The pool is pebble's ``ProcessPool``: unlike ``concurrent.futures.ProcessPoolExecutor``
(which cannot stop one running call) and loky (which reuses workers, with no per-call
kill), cancelling one of its running futures terminates that worker (SIGTERM, then
SIGKILL after a grace period) and a fresh worker takes its place. Workers are started
with ``spawn``: forking a process that runs threads (actors, timers) can copy a lock
held by another thread and hang the child.

Progress reported inside a worker crosses one pipe per executor to a thread the executor
owns (its *progress reader*), which hands it to the task store. The outcome of an attempt
that reported progress passes through that thread too, after the progress: pebble's
thread that receives the result queues it and writes a marker into the same pipe, so the
progress a worker reported before it returned is in the store before the task ends (and
not dropped as late). An attempt that reported none (the worker says so with its result)
is settled on pebble's thread at once.

*Prefetch*: the executor takes ``max_workers * (1 + prefetch)`` attempts at once, so that
a worker that finishes finds its next call already in pebble's queue instead of waiting
for a round trip through the manager (no-op tasks: 2,600/s without, see the README's
Speed section for with). An attempt waiting there has not started: its timeout is
pebble's own, counted from the moment a worker acknowledges the call; and a cancel of a
waiting attempt must not kill a worker. For that, each call in flight has two flags in
memory shared with the workers: the worker raises *started* and then reads *cancelled*;
a cancel raises *cancelled* and then reads *started*, and asks pebble to kill the worker
only if it started (each side fences between its write and its read, so at least one of
them sees the other's flag: a call is never both run and let go unkilled). A worker that
finds its call cancelled skips it.
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
from actors._remote import (
    MAX_MESSAGE_CHARS,
    Call,
    Done,
    ProgressSink,
    WorkerTimedOut,
    check_pickles,
    future_of,
    run_call,
)
from actors._runtime import Dispatcher, ThreadPoolDispatcher
from actors.errors import TaskExecutionError
from supervision._log import get_logger
from supervision._validate import check_int

__all__ = ["ProcessExecutor"]

_log = get_logger("actors")

DEFAULT_PREFETCH = 4
"""Attempts queued behind each worker's running one by default. With 2 workers, no-op
tasks reach about 90% of their rate with a queue of any length at 4 (measured with
examples/benchmark.py scenario 11); more would only commit more attempts to the pool
early (they leave the manager's priority queue, and hold slots of max_concurrent_tasks)."""

# In a worker process: the write end of its executor's progress pipe, the flags, and how
# many progress messages it has sent (its result says whether a call sent any).
_progress: multiprocessing.connection.Connection | None = None
_flags: Any = None  # a shared array of bytes: 2 per call slot (started, cancelled)
_sent = 0
_fence = threading.Lock()  # acquiring it is a full memory barrier
_OUTCOME = "outcome"  # in the pipe: the next queued outcome is due
_CANCELLED = ("CANCELLED", "CANCELLED_AND_NOTIFIED")  # a cancelled Future's states


class _Progressed:
    """A call's result, from a worker that sent progress during the call: its outcome
    must go behind that progress (through the progress reader)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Progressed, (self.value,))


def _start_worker(progress: multiprocessing.connection.Connection, flags: Any) -> None:
    """Pebble's initializer, in each new worker: keep the progress pipe and the flags; let
    SIGINT (a Ctrl-C at the terminal reaches the whole process group) to the manager only."""
    global _progress, _flags
    _progress, _flags = progress, flags
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _send_progress(task_id: str, attempt: int, fraction: float, message: str) -> None:
    global _sent
    if _progress is not None:
        _sent += 1
        _progress.send((task_id, attempt, fraction, message[:MAX_MESSAGE_CHARS]))


def _run_in_worker(call: Call, slot: int) -> Any:
    """What a worker runs for one attempt (in the worker process)."""
    flags = _flags
    if slot >= 0 and flags is not None:
        flags[2 * slot] = 1  # started
        with _fence:
            pass
        if flags[2 * slot + 1]:  # cancelled while it waited: skip it
            return None
    sent = _sent
    result = run_call(call, functools.partial(_send_progress, call.task_id, call.attempt))
    return result if _sent == sent else _Progressed(result)


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

    enforces_timeouts = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        name: str | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        check_int("max_workers", max_workers, minimum=1)
        check_int("prefetch", prefetch, minimum=0, maximum=1000)
        super().__init__(name)
        self.max_workers = max_workers
        self.prefetch = prefetch
        # Call slots for the started/cancelled flags: those in flight, and as many again
        # for calls let go (timed out, cancelled) whose worker pebble has not killed yet.
        # A call that finds none free runs without flags (its cancel kills its worker).
        self._slots = 2 * self.max_in_flight
        self._flags: Any = None
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self._slots):
            self._free.put(slot)
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
            self._flags = multiprocessing.get_context("spawn").RawArray("b", 2 * self._slots)
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
            initargs=(self._pipe_out, self._flags),
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
        return future_of(self._start_call, call, report)

    def _start_call(self, call: Call, report: ProgressSink, done: Done) -> Callable[[], None]:
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"executor {self.name} is not open")
        self._report = report  # the same sink for every call: the store's
        flags = self._flags
        try:
            slot = self._free.get_nowait()
        except queue.Empty:
            slot = -1
        else:
            flags[2 * slot] = flags[2 * slot + 1] = 0
        try:
            try:
                running = pool.schedule(_run_in_worker, args=(call, slot), timeout=call.timeout)
            except RuntimeError:  # given up by pebble (checked here, not before each call)
                pool = self._working_pool()
                running = pool.schedule(_run_in_worker, args=(call, slot), timeout=call.timeout)
        except BaseException:
            if slot >= 0:
                self._free.put(slot)  # never handed over: the slot is free again
            raise
        running.add_done_callback(functools.partial(self._returned, done, call, slot))

        def stop_worker() -> None:
            # Under the attempt's lock (a timeout, a cancel): never waits.
            if slot >= 0:
                flags[2 * slot + 1] = 1  # cancelled: a worker that has not started skips it
                with _fence:
                    pass
                if not flags[2 * slot]:
                    return  # not started: no worker to kill
            running.cancel()  # type: ignore[no-untyped-call]  # pebble kills its worker

        return stop_worker

    def _returned(
        self, done: Done, call: Call, slot: int, running: concurrent.futures.Future[Any]
    ) -> None:
        """Pebble's future is done (on one of pebble's threads): tell ``done``, here or, if
        the call reported progress, behind that progress in the pipe."""
        if slot >= 0:
            self._free.put(slot)  # the worker is done with its flags (or dead)
        # Pebble's future is done: its fields are final, read without its lock.
        pipe = self._pipe_out
        if (
            pipe is None
            or running._state in _CANCELLED  # no progress of it counts any more
            or (running._exception is None and type(running._result) is not _Progressed)
        ):
            _settle(done, call, running)
            return
        self._outcomes.put(functools.partial(_settle, done, call, running))
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
        return f"ProcessExecutor({self.max_workers}, prefetch={self.prefetch}, name={self.name!r})"


def _settle(done: Done, call: Call, running: concurrent.futures.Future[Any]) -> None:
    """The attempt's end from pebble's (done) future, to ``done``."""
    if running._state in _CANCELLED:  # by the attempt (its end is told already) or at close
        done(None, concurrent.futures.CancelledError())
        return
    error = running._exception
    if error is None:
        result = running._result
        done(result.value if type(result) is _Progressed else result, None)
        return
    if (
        type(error) is TimeoutError
        and error.args[:1] == ("Task timeout",)
        and getattr(error, "traceback", None) is None  # pebble's own, not the task's
    ):
        error = WorkerTimedOut(f"ran more than {call.timeout}s on its worker")
    elif isinstance(error, pebble.ProcessExpired):
        error = TaskExecutionError(
            f"task {call.task_name!r} ({call.task_id}): its worker process (pid {error.pid}) "
            f"died: {_exit_reason(error.exitcode)} (attempt {call.attempt})",
            call.task_id,
            {"attempt": call.attempt, "exitcode": error.exitcode, "pid": error.pid},
        )
    done(None, error)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
