"""The process executor's pool: worker processes, each fed through a pipe of its own.

Why our own pool (on pebble's pattern, which the first version used as is):
``concurrent.futures.ProcessPoolExecutor`` cannot stop one running call, loky has no
per-call kill, and pebble's ``ProcessPool``, which can, passes every call and result
through a shared queue, three threads of its own and their conditions: with no-op tasks
pebble alone ran at 0.85x a plain ``ProcessPoolExecutor``, before any work of ours. This
pool keeps pebble's pattern (a call's timeout or cancel terminates its worker, SIGTERM
then SIGKILL after a grace period, and a fresh worker replaces it; a worker's death is
its running call's error) with less machinery:

- Each worker has a duplex pipe of its own. A call is pickled and written to the pipe of
  the worker with the fewest calls (at most ``depth`` each: one running, the rest
  queued in its pipe), on the submitting thread. The worker runs its calls in order and
  writes back, on the same pipe, a notice when a call with a timeout starts, its
  progress, and its outcome: a call's progress always arrives before its outcome.
- One thread (the pool's *reader*) polls every pipe and every worker's sentinel: it ends
  the calls with their outcomes, passes progress on, arms the deadline of a call whose
  start it is told, and buries dead workers (their queued calls go to other workers,
  their running call fails) and starts their replacements. The outcomes it tells are
  where the next calls are usually submitted from, so it mostly feeds the workers itself.
- Messages are length-prefixed frames on the raw pipes: one read takes every whole frame
  the pipe holds (a worker's replies, or the calls queued for a worker). While the reader
  handles what one poll brought, the calls it launches wait in their workers' outboxes
  and go out with one write per worker at the end: a write to an idle worker wakes its
  process, which on a shared machine costs more than the no-op call itself (measured
  with examples/benchmark.py scenario 11: 0.64-0.92x ``ProcessPoolExecutor`` one call
  per write, 0.89-1.17x corked).

A queued call must not be killed with the worker that runs another: each call in a
worker's pipe has two flags in memory shared with the workers (a *slot*). The worker
raises *started* and then reads *cancelled*; a cancel raises *cancelled* and then reads
*started*, and kills the worker only if it started (each side fences between its write
and its read, so at least one of them sees the other's flag). A worker that finds its
call cancelled skips it.

The pool's lock guards the workers' lists of calls, the queue of calls no worker can take
yet, and the free slots; it is held for a write to a pipe (never one that can block: a
worker's queued calls stay under ``QUEUED_BYTES``, a larger call goes to an idle worker)
and never while an outcome is told.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import select
import signal
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from actors._remote import Call, Done, ProgressSink, WorkerTimedOut, WorkLetGo, run_call
from actors.errors import TaskExecutionError
from supervision._log import get_logger

__all__ = ["KILL_GRACE", "QUEUED_BYTES", "WorkerPool"]

_log = get_logger("actors")

KILL_GRACE = 1.0
"""Seconds between a worker's SIGTERM and its SIGKILL (a task may catch SIGTERM)."""

QUEUED_BYTES = 32 * 1024
"""The most bytes of calls queued in one worker's pipe: well under a pipe's buffer, so a
write never waits for a worker that is busy. A larger call goes to an idle worker."""

# Messages are frames: their length (of what follows it), then a header, then a pickle.
_LENGTH = struct.Struct("<I")
_CALL = struct.Struct("<IqI?")  # to a worker: length, sequence number, slot, timed
_REPLY = struct.Struct("<IqB")  # from a worker: length, sequence number, kind
_RESULT, _ERROR, _STARTED, _PROGRESS, _SKIPPED = range(5)
_STOP = _LENGTH.pack(0)  # to a worker: exit
_READ = 1 << 18  # bytes asked of one read: every whole frame they hold is handled


class _Frames:
    """Frames from a byte stream read in chunks (one read often brings several: a
    worker's replies, or the calls queued for it)."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest = bytearray()  # the start of a frame that has not all arrived

    def feed(self, chunk: bytes) -> list[bytes]:
        rest = self.rest
        if rest:
            rest += chunk
            if len(rest) >= 4 and len(rest) < 4 + _LENGTH.unpack_from(rest)[0]:
                return []  # still partial: no copy until it is whole
            data = bytes(rest)
            rest.clear()
        else:
            data = chunk
        frames = []
        offset, end = 0, len(data)
        while end - offset >= 4:
            size = 4 + _LENGTH.unpack_from(data, offset)[0]
            if end - offset < size:
                break
            frames.append(data if size == end else data[offset : offset + size])
            offset += size
        if offset < end:
            rest += memoryview(data)[offset:]
        return frames


def _write(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (a blocking socket may take it in parts)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(view):
            written += os.write(fd, view[written:])


# -- the worker's side -----------------------------------------------------------------------

_fd = -1  # its pipe (the Connection that owns it lives as long as _serve)
_send_lock = threading.Lock()  # a task's own threads may report progress too
_fence = threading.Lock()  # acquiring it is a full memory barrier


class _RemoteTraceback(Exception):  # noqa: N818 - the worker's traceback, as the cause
    pass


def _reply(seq: int, kind: int, value: Any) -> None:
    try:
        payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - what does not pickle is the call's error
        what = "result" if kind == _RESULT else "exception" if kind == _ERROR else "progress"
        refusal = TypeError(
            f"the task's {what} does not pickle, so it cannot leave its worker process: "
            f"{type(error).__name__}: {error}"
        )
        kind, payload = _ERROR, pickle.dumps(refusal)
    data = _REPLY.pack(_REPLY.size - 4 + len(payload), seq, kind) + payload
    with _send_lock:
        _write(_fd, data)


def _report(seq: int, fraction: float, message: str) -> None:
    _reply(seq, _PROGRESS, (fraction, message))


def _serve(conn: multiprocessing.connection.Connection, flags: Any) -> None:
    """A worker process's life: run the calls its pipe brings, one at a time, in order."""
    global _fd
    _fd = conn.fileno()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the manager
    offset = _CALL.size
    frames = _Frames()
    calls: deque[bytes] = deque()
    while True:
        if not calls:
            try:
                chunk = os.read(_fd, _READ)
            except OSError:
                return
            if not chunk:
                return  # the manager is gone
            calls.extend(frames.feed(chunk))
            continue
        data = calls.popleft()
        if data == _STOP:
            return
        _, seq, slot, timed = _CALL.unpack_from(data)
        flags[2 * slot] = 1  # started
        with _fence:
            pass
        if flags[2 * slot + 1]:  # cancelled while it waited: skip it
            _reply(seq, _SKIPPED, None)
            continue
        if timed:
            _reply(seq, _STARTED, None)  # the manager arms its deadline
        try:
            call = pickle.loads(memoryview(data)[offset:])
            value = run_call(call, functools.partial(_report, seq))
        except BaseException as error:  # noqa: BLE001 - every failure is the call's outcome
            kind, value = _ERROR, _Raised(error, "".join(traceback.format_exception(error)))
        else:
            kind = _RESULT
        del data
        try:
            _reply(seq, kind, value)
        except OSError:
            return  # the manager is gone
        del value


class _Raised:
    """An exception crossing back with its worker's traceback (as its ``__cause__``)."""

    def __init__(self, error: BaseException, text: str) -> None:
        self.error, self.text = error, text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.error, self.text))


def _rebuild(error: BaseException, text: str) -> BaseException:
    if error.__cause__ is None:
        error.__cause__ = _RemoteTraceback(f"\n'''\n{text}'''")
    return error


# -- the manager's side ----------------------------------------------------------------------


class _Job:
    """One call in the pool: queued, in a worker's pipe, or running there."""

    __slots__ = ("body", "call", "done", "finished", "let_go", "seq", "slot", "worker")

    def __init__(self, call: Call, done: Done, body: bytes) -> None:
        self.call, self.done, self.body = call, done, body
        self.seq = 0
        self.slot = -1
        self.worker: _Worker | None = None
        self.let_go = False  # its attempt ended without it: its outcome is nobody's
        self.finished = False


class _Worker:
    __slots__ = (
        "conn",
        "dying",
        "expired",
        "fd",
        "frames",
        "jobs",
        "kill_at",
        "outbox",
        "pid",
        "process",
        "queued",
        "sentinel",
    )

    def __init__(self, process: Any, conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn
        self.fd = conn.fileno()
        self.frames = _Frames()  # what it sent
        self.outbox: list[bytes] = []  # calls to write (see WorkerPool._uncork)
        self.sentinel: int = process.sentinel
        self.pid: int = process.pid
        self.jobs: deque[_Job] = deque()  # in its pipe, in order; the first may be running
        self.queued = 0  # bytes of those
        self.dying = False
        self.expired: _Job | None = None  # the call that ran out of time on it
        self.kill_at = 0.0  # when a dying worker gets SIGKILL


class WorkerPool:
    """``size`` worker processes (``spawn``), each taking up to ``depth`` calls at once."""

    def __init__(self, size: int, depth: int, *, name: str, report: ProgressSink) -> None:
        self.size, self.depth, self.name = size, depth, name
        self._report = report
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._waiting: deque[_Job] = deque()  # no worker can take them yet
        # Slots: every call in a pipe has one; calls let go keep theirs until their
        # worker skips them or dies. A call that finds none waits.
        slots = 4 * size * depth
        self._flags: Any = self._context.RawArray("b", 2 * slots)
        self._free = list(range(slots))
        self._numbers = itertools.count()
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._kills: deque[_Worker] = deque()  # for the reader to arm (their SIGKILL)
        # The reader's: deadlines of started calls with a timeout (a heap), and how many
        # of them belong to calls that ended since (dropped when they are half the heap:
        # a call that ends long before its timeout must not be held until then).
        self._deadlines: list[tuple[float, int, _Job, _Worker]] = []
        self._ended_early = 0
        # While the reader handles one poll's news, the calls it launches wait in their
        # workers' outboxes (and calls for those workers from other threads behind them).
        self._corked = False
        self._corked_workers: list[_Worker] = []
        self._reader = threading.Thread(target=self._read, name=f"{name}-pool", daemon=True)

    def start(self) -> None:
        workers = [self._spawn() for _ in range(self.size)]
        with self._lock:
            self._workers += workers
        self._reader.start()

    # -- any thread ----------------------------------------------------------------------

    def submit(self, call: Call, done: Done) -> _Job:
        """Hand ``call`` to a worker (or queue it); ``done`` is told its outcome, on the
        reader's thread, unless the job is let go first. Raises if ``call`` does not
        pickle or the pool is closed."""
        job = _Job(call, done, pickle.dumps(call, pickle.HIGHEST_PROTOCOL))
        with self._lock:
            if self._closing:
                raise RuntimeError(f"the process pool of {self.name} is closed")
            job.seq = next(self._numbers)
            if self._waiting or not self._place(job):
                self._waiting.append(job)
        return job

    def let_go(self, job: _Job) -> None:
        """The job's attempt ended without it (a timeout, a cancel): forget its outcome,
        and if its worker is running it, kill that worker. Never waits."""
        with self._lock:
            if job.let_go or job.finished:
                return
            job.let_go = True
            worker = job.worker
            if worker is None:  # still waiting here
                self._waiting.remove(job)
                job.finished = True
                return
            flags, slot = self._flags, job.slot
            flags[2 * slot + 1] = 1  # cancelled: a worker that has not started skips it
            with _fence:
                pass
            if not flags[2 * slot]:
                return  # not started: its worker will skip it
            self._kill(worker)

    def close(self) -> None:
        """Stop the workers (running calls end with WorkLetGo) and the reader."""
        with self._lock:
            self._closing = True
        self._wake()
        if self._reader.is_alive():
            self._reader.join()
        else:  # never started
            self._shut_down()

    # -- under the lock --------------------------------------------------------------------

    def _place(self, job: _Job) -> bool:
        """Write ``job`` to the pipe of the worker with the fewest calls, if one can take
        it now (room, bytes, a free slot)."""
        best: _Worker | None = None
        for worker in self._workers:
            if not worker.dying and (best is None or len(worker.jobs) < len(best.jobs)):
                best = worker
        if best is None or len(best.jobs) >= self.depth or not self._free:
            return False
        size = len(job.body)
        if best.jobs and best.queued + size > QUEUED_BYTES:
            return False
        slot = job.slot = self._free.pop()
        self._flags[2 * slot] = self._flags[2 * slot + 1] = 0
        job.worker = best
        best.jobs.append(job)
        best.queued += size
        data = _CALL.pack(_CALL.size - 4 + size, job.seq, slot, job.call.timeout is not None)
        if best.outbox or (self._corked and threading.get_ident() == self._reader.ident):
            # The reader is handling what one poll brought: the calls its outcomes
            # launch go out together at its end (one write, one wake-up per worker).
            if not best.outbox:
                self._corked_workers.append(best)
            best.outbox += (data, job.body)
            return True
        try:
            _write(best.fd, data + job.body)
        except OSError:
            return True  # it died: the reader buries it and hands the job on (never started)
        return True

    def _uncork(self) -> None:
        """Write the calls held while the reader handled one poll's news (under the lock)."""
        for worker in self._corked_workers:
            data = b"".join(worker.outbox)
            worker.outbox.clear()
            with contextlib.suppress(OSError):  # it died: the reader buries it
                _write(worker.fd, data)
        self._corked_workers.clear()

    def _fill(self) -> None:
        waiting = self._waiting
        while waiting and self._place(waiting[0]):
            waiting.popleft()

    def _kill(self, worker: _Worker) -> None:
        if worker.dying:
            return
        worker.dying = True
        _signal(worker.pid, signal.SIGTERM)
        self._kills.append(worker)
        self._wake()

    def _free_slot(self, job: _Job) -> None:
        self._free.append(job.slot)
        job.slot = -1

    # -- the reader's thread -------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # shut down
        with contextlib.suppress(OSError):  # its pipe is full: it will wake
            os.write(self._wake_w, b"!")

    def _spawn(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self._flags), name=f"{self.name}-worker", daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _read(self) -> None:
        poller = select.poll()
        owners: dict[int, tuple[_Worker, bool]] = {}  # fd: (worker, is its sentinel)

        def watch(worker: _Worker) -> None:
            for fd, sentinel in ((worker.fd, False), (worker.sentinel, True)):
                owners[fd] = (worker, sentinel)
                poller.register(fd, select.POLLIN)

        def unwatch(fd: int) -> None:
            if owners.pop(fd, None) is not None:
                poller.unregister(fd)

        poller.register(self._wake_r, select.POLLIN)
        with self._lock:
            for worker in self._workers:
                watch(worker)
        deadlines = self._deadlines
        dying: list[_Worker] = []  # sent SIGTERM: SIGKILL at their kill_at
        respawn_at: float | None = None  # when to start workers up to size again
        while True:
            wait = -1  # poll's "no timeout"
            if deadlines or dying or respawn_at is not None:
                times = [worker.kill_at for worker in dying]
                if deadlines:
                    times.append(deadlines[0][0])
                if respawn_at is not None:
                    times.append(respawn_at)
                wait = max(0, math.ceil((min(times) - time.monotonic()) * 1000))
            events = poller.poll(wait)
            self._corked = True
            for fd, _ in events:
                if fd == self._wake_r:
                    os.read(fd, 4096)
                    continue
                owner = owners.get(fd)
                if owner is None:
                    continue
                worker, sentinel = owner
                try:
                    if sentinel:
                        unwatch(worker.fd)
                        unwatch(fd)
                        if worker in dying:
                            dying.remove(worker)
                        self._bury(worker)
                        respawn_at = time.monotonic()
                    elif not self._receive(worker):
                        unwatch(fd)  # its end is closed: the sentinel says the rest
                except Exception:  # noqa: BLE001 - the reader must outlive any one message
                    _log.error("executor.pool_failed", executor=self.name, exc_info=True)
            if self._corked_workers:  # only the reader adds to it (see _place)
                with self._lock:
                    self._uncork()
            self._corked = False
            if self._closing:
                self._shut_down()
                return
            while self._kills:
                worker = self._kills.popleft()
                worker.kill_at = time.monotonic() + KILL_GRACE
                dying.append(worker)
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, _, job, worker = heapq.heappop(deadlines)
                self._time_out(job, worker)
            for worker in [w for w in dying if w.kill_at <= now]:
                dying.remove(worker)
                _signal(worker.pid, signal.SIGKILL)
            if respawn_at is not None and respawn_at <= now:
                respawn_at = self._respawn(watch)

    def _receive(self, worker: _Worker) -> bool:
        """What ``worker`` sent (every whole message of one read); False if its pipe is
        closed."""
        try:
            chunk = os.read(worker.fd, _READ)
        except OSError:
            return False
        if not chunk:
            return False
        for data in worker.frames.feed(chunk):
            try:
                self._handle(worker, data)
            except Exception:  # noqa: BLE001 - the reader must outlive any one message
                _log.error("executor.pool_failed", executor=self.name, exc_info=True)
        return True

    def _handle(self, worker: _Worker, data: bytes) -> None:
        """One message from ``worker``."""
        _, seq, kind = _REPLY.unpack_from(data)
        jobs = worker.jobs
        job = jobs[0] if jobs and jobs[0].seq == seq else None
        if kind in (_PROGRESS, _STARTED):
            if job is None or job.let_go:
                return  # from a call that has ended since (a thread of its own)
            if kind == _STARTED:
                timeout = job.call.timeout
                assert timeout is not None
                heapq.heappush(self._deadlines, (time.monotonic() + timeout, seq, job, worker))
                return
            try:
                fraction, message = pickle.loads(memoryview(data)[_REPLY.size :])
                call = job.call
                self._report(call.task_id, call.attempt, fraction, message)
            except Exception:  # noqa: BLE001 - one bad report never stops the reader
                _log.error("progress.failed", executor=self.name, exc_info=True)
            return
        if job is None:
            return  # cannot be: the worker answers its calls in order
        with self._lock:
            jobs.popleft()
            worker.queued -= len(job.body)
            job.finished = True
            self._free_slot(job)
            self._fill()
        if job.call.timeout is not None:
            self._ended_early += 1
            if self._ended_early > 64 and 2 * self._ended_early > len(self._deadlines):
                self._deadlines[:] = [entry for entry in self._deadlines if not entry[2].finished]
                heapq.heapify(self._deadlines)
                self._ended_early = 0
        if job.let_go or job is worker.expired:
            return
        try:
            value = pickle.loads(memoryview(data)[_REPLY.size :])
        except Exception as error:  # noqa: BLE001 - e.g. an exception type that needs args
            value, kind = (
                TypeError(
                    f"the task's {'result' if kind == _RESULT else 'exception'} did not "
                    f"unpickle in the manager: {type(error).__name__}: {error}"
                ),
                _ERROR,
            )
        if kind == _RESULT:
            job.done(value, None)
        else:
            job.done(None, value)

    def _time_out(self, job: _Job, worker: _Worker) -> None:
        """``job`` ran its timeout: kill its worker. The timeout is told once the worker
        is dead (``_bury``): a retry never runs beside the attempt it replaces."""
        with self._lock:
            if job.finished or job.let_go or worker.dying:
                return
            worker.expired = job
            self._kill(worker)

    def _bury(self, worker: _Worker) -> None:
        """``worker`` exited: its running call fails (unless let go), its queued ones go to
        other workers, a fresh worker takes its place."""
        worker.process.join()
        code = worker.process.exitcode
        worker.process.close()  # its sentinel
        worker.conn.close()
        failed: _Job | None = None
        with self._lock:
            self._workers.remove(worker)
            requeued: list[_Job] = []
            for job in worker.jobs:
                started = self._flags[2 * job.slot]
                self._free_slot(job)
                if job.let_go or job is worker.expired:
                    job.finished = True
                elif started:
                    job.finished = True
                    failed = job
                else:
                    job.worker = None
                    requeued.append(job)
            worker.jobs.clear()
            if worker.outbox:  # calls never written: requeued above
                worker.outbox.clear()
                self._corked_workers.remove(worker)
            self._waiting.extendleft(reversed(requeued))
        expired = worker.expired
        if expired is not None and not expired.let_go:
            _tell_timed_out(expired)
        if failed is not None:
            call = failed.call
            why = _exit_reason(code)
            if worker.dying:
                why += ", stopped to end another attempt that ran on it"
            failed.done(
                None,
                TaskExecutionError(
                    f"task {call.task_name!r} ({call.task_id}): its worker process "
                    f"(pid {worker.pid}) died: {why} (attempt {call.attempt})",
                    call.task_id,
                    {"attempt": call.attempt, "exitcode": code, "pid": worker.pid},
                ),
            )
        elif not worker.dying:
            _log.warning("executor.worker_died", executor=self.name, exitcode=code)

    def _respawn(self, watch: Callable[[_Worker], None]) -> float | None:
        """Start workers up to ``size``; when to try again if starting one failed."""
        while len(self._workers) < self.size and not self._closing:
            try:
                worker = self._spawn()
            except Exception:  # noqa: BLE001 - e.g. out of file descriptors: try again soon
                _log.error("executor.spawn_failed", executor=self.name, exc_info=True)
                return time.monotonic() + 1.0
            watch(worker)
            with self._lock:
                self._workers.append(worker)
                self._fill()
        return None

    def _shut_down(self) -> None:
        """Close: the workers stop (a busy one is terminated), every call not told yet
        ends cancelled (one whose timeout was on its way, timed out)."""
        with self._lock:
            workers, self._workers = self._workers, []
            ended = list(self._waiting)
            self._waiting.clear()
            expired = [worker.expired for worker in workers if worker.expired is not None]
            for worker in workers:
                ended += worker.jobs
        for worker in workers:
            if worker.jobs:  # busy: its calls are cancelled
                _signal(worker.pid, signal.SIGTERM)
            else:
                with contextlib.suppress(OSError):
                    _write(worker.fd, _STOP)
        for worker in workers:
            worker.process.join(KILL_GRACE)
            if worker.process.exitcode is None:
                _signal(worker.pid, signal.SIGKILL)
                worker.process.join()
            worker.process.close()
            worker.conn.close()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1
        for job in expired:
            if not job.let_go:
                job.finished = True
                _tell_timed_out(job)
        cancelled = WorkLetGo("the process pool closed")
        for job in ended:
            if not job.let_go and not job.finished and job not in expired:
                job.finished = True
                job.done(None, cancelled)


def _tell_timed_out(job: _Job) -> None:
    job.done(None, WorkerTimedOut(f"ran more than {job.call.timeout}s on its worker"))


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.kill(pid, signum)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
