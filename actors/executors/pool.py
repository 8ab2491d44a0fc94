"""The process executor's pool: worker processes, each fed through a pipe of its own.

A call's timeout or cancel kills the worker that runs it and a fresh worker replaces it;
a worker's death is its running call's error. One thread, the reader, owns the pipes and
the workers' lives; the pool's lock guards the workers' call lists, the waiting queue and
the free slots. The design (why not pebble, frames, slots): docs/architecture.md.
"""

from __future__ import annotations

import atexit
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
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any
from weakref import WeakSet

from actors.core.call import (
    Call,
    Done,
    ProgressSink,
    RemoteError,
    WorkerTimedOut,
    WorkLetGo,
    run_call,
)
from actors.errors import TaskExecutionError
from supervision._log import get_logger

__all__ = ["KILL_GRACE", "QUEUED_BYTES", "RESPAWN_BACKOFF", "WorkerPool"]

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
_RESULT, _ERROR, _STARTED, _PROGRESS, _SKIPPED, _READY = range(6)
_STOP = _LENGTH.pack(0)  # to a worker: exit
_READ = 1 << 18  # bytes asked of one read: every whole frame they hold is handled

RESPAWN_BACKOFF = (0.5, 30.0)
"""Seconds before the pool starts a worker again after one exited before it was ready
(the first delay, doubled after each such failure up to the second): a worker that can
never start is not restarted in a tight loop."""

HANG_UP_GRACE = 1.0
"""Seconds a worker that closed its pipe (a task ran ``os.closerange``) gets to exit
before it is stopped: it can no longer take calls or send an outcome."""

_MAX_WAIT_MS = 60_000  # poll()'s argument is a C int of milliseconds: never more than this
_CHECK_EVERY = 0.25  # without a pidfd, how often a worker whose sentinel lied is asked
_PIDFD = hasattr(os, "pidfd_open")  # Linux >= 5.3: a worker's exit, pollable, fds aside
_NO_MAIN_GUARD = 86  # a worker's exit code: its main module tried to start a pool
_WORKER = "-worker"  # ends a worker process's name
_PIPE, _EXIT, _SENTINEL = range(3)  # what a worker's fd in the reader's poll set tells


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


def _serve(
    conn: multiprocessing.connection.Connection,
    flags: Any,
    manager_alive: multiprocessing.connection.Connection,
    manager: int,
) -> None:
    """A worker process's life: run the calls its pipe brings, one at a time, in order."""
    global _fd
    _fd = conn.fileno()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the manager
    with contextlib.suppress(OSError):
        # Its own process group, so a kill of the worker reaches a task's children; not
        # its own session: with the kernel's autogroup scheduling a session is a
        # scheduling group of its own, which slows short tasks down.
        os.setpgid(0, 0)
    _die_with(manager, manager_alive)
    offset = _CALL.size
    frames = _Frames()
    calls: deque[bytes] = deque()
    try:
        _write(_fd, _REPLY.pack(_REPLY.size - 4, 0, _READY))
    except OSError:
        return  # the manager is gone
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
            kind, value = _ERROR, _Raised(error)
        else:
            kind = _RESULT
        del data
        try:
            _reply(seq, kind, value)
        except OSError:
            return  # the manager is gone
        del value


def _die_with(manager: int, manager_alive: multiprocessing.connection.Connection) -> None:
    """Make this worker (and its process group) die when the manager ``manager`` does.

    Linux: ``PR_SET_PDEATHSIG`` (SIGKILL when the thread that started the worker, the
    pool's reader, ends). Everywhere: a thread that reads ``manager_alive``, a pipe whose
    only writer is the manager (end of file: it died), or, if a task closed that pipe,
    watches the parent pid.
    """
    if sys.platform == "linux":
        with contextlib.suppress(Exception):  # no libc prctl: the watch below still holds
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    fd = manager_alive.fileno()

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass  # nothing is ever written: only its end of file comes
        except OSError:  # a task closed it: fall back to the parent pid
            while os.getppid() == manager:
                threading.Event().wait(1.0)
        _kill_own_group()

    threading.Thread(target=watch, name="manager-watch", daemon=True).start()
    if os.getppid() != manager:  # it died before either watch was set up
        _kill_own_group()


_PR_SET_PDEATHSIG = 1


def _kill_own_group() -> None:
    if os.getpgid(0) == os.getpid():  # its own group (never the manager's)
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class _Raised:
    """An exception crossing back: its type's qualified name, its text and its worker's
    traceback always (plain strings), and the exception itself when it pickles. The
    manager rebuilds the exception (the traceback as its ``__cause__``) or, if that
    fails, raises a :class:`RemoteError` carrying the three strings."""

    def __init__(self, error: BaseException) -> None:
        kind = type(error)
        self.type_name = f"{kind.__module__}.{kind.__qualname__}"
        self.message = _text_of(error)
        self.traceback = "".join(traceback.format_exception(error))
        try:
            self.error: bytes | None = pickle.dumps(error, pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - it holds a lock, a socket, ...
            self.error = None

    def rebuild(self) -> BaseException:
        """The exception, or a RemoteError standing in for it (in the manager)."""
        if self.error is not None:
            try:
                error: BaseException = pickle.loads(self.error)
            except BaseException:  # noqa: BLE001 - e.g. an __init__ that takes two arguments
                pass
            else:
                if error.__cause__ is None:
                    error.__cause__ = _RemoteTraceback(f"\n'''\n{self.traceback}'''")
                return error
        stand_in = RemoteError(self.type_name, self.message, self.traceback)
        stand_in.__cause__ = _RemoteTraceback(f"\n'''\n{self.traceback}'''")
        return stand_in


def _text_of(error: BaseException) -> str:
    try:
        return str(error)
    except BaseException:  # noqa: BLE001 - a __str__ that raises
        return f"<{type(error).__name__}: str() failed>"


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
        "hung_up_at",
        "jobs",
        "kill_at",
        "outbox",
        "pid",
        "pidfd",
        "process",
        "queued",
        "ready",
        "sentinel",
        "why",
    )

    def __init__(self, process: Any, conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn
        self.fd = conn.fileno()
        self.frames = _Frames()  # what it sent
        self.outbox: list[bytes] = []  # calls to write (see WorkerPool._uncork)
        self.sentinel: int = process.sentinel
        self.pid: int = process.pid
        self.pidfd = -1  # readable once it exited, whoever holds its pipes (Linux)
        if _PIDFD:
            with contextlib.suppress(OSError):  # an older kernel: the sentinel, checked
                self.pidfd = os.pidfd_open(self.pid)
        self.jobs: deque[_Job] = deque()  # in its pipe, in order; the first may be running
        self.queued = 0  # bytes of those
        self.ready = False  # it said so: it started, and runs the calls it is sent
        self.dying = False
        self.why = ""  # why it was stopped, if not to end its own running call
        self.expired: _Job | None = None  # the call that ran out of time on it
        self.kill_at = 0.0  # when a dying worker gets SIGKILL
        self.hung_up_at = 0.0  # when a worker that closed its pipe is stopped


class WorkerPool:
    """``size`` worker processes (``spawn``), each taking up to ``depth`` calls at once.

    Each worker is its own process group (a timeout, cancel or stop kills the group: the
    task's own children with it) and dies with the manager (see ``_die_with``). Workers
    are started on the reader's thread, which also reaps them (by pid, not by pipe: a
    task's forked child may hold a worker's pipes open, or a task may close them).
    """

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
        self._broken = ""  # why the reader stopped, if it failed
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # Only this process writes to it (never: its end of file tells workers it died).
        self._alive_r, self._alive_w = self._context.Pipe(duplex=False)
        self._kills: deque[_Worker] = deque()  # for the reader to arm (their SIGKILL)
        # The reader's: deadlines of started calls with a timeout (a heap), and how many
        # of them belong to calls that ended since (dropped when they are half the heap:
        # a call that ends long before its timeout must not be held until then).
        self._deadlines: list[tuple[float, int, _Job, _Worker]] = []
        self._ended_early = 0
        # Workers that exited before they were ready, in a row, and what the last said.
        self._start_failures = 0
        self._start_error = ""
        self._refill = False  # a worker started after failures: start up to size again
        # While the reader handles one poll's news, the calls it launches wait in their
        # workers' outboxes (and calls for those workers from other threads behind them).
        self._corked = False
        self._corked_workers: list[_Worker] = []
        self._started = threading.Event()
        self._start_raised: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name=f"{name}-pool", daemon=True)

    def start(self) -> None:
        """Start the reader, which starts the workers; raises what starting them raised."""
        if _importing_main_in_worker():
            # The program's main module, imported by one of our spawned workers, is
            # starting a pool: its top-level code is not under a __main__ guard.
            sys.stderr.write(
                f"actors: a process executor's worker (pid {os.getpid()}) imported the "
                "program's main module, which started a process executor again: put the "
                'top-level code of the script under `if __name__ == "__main__":`\n'
            )
            sys.stderr.flush()
            os._exit(_NO_MAIN_GUARD)
        _pools.add(self)
        self._reader.start()
        self._started.wait()
        if self._start_raised is not None:
            self._reader.join()
            raise self._start_raised

    # -- any thread ----------------------------------------------------------------------

    def submit(self, call: Call, done: Done) -> _Job:
        """Hand ``call`` to a worker (or queue it); ``done`` is told its outcome, on the
        reader's thread, unless the job is let go first. Raises if ``call`` does not
        pickle or the pool is closed."""
        job = _Job(call, done, pickle.dumps(call, pickle.HIGHEST_PROTOCOL))
        with self._lock:
            if self._closing:
                raise RuntimeError(f"the process pool of {self.name} is closed{self._broken}")
            job.seq = next(self._numbers)
            if self._waiting or not self._place(job):
                self._waiting.append(job)
                if self._start_error:
                    self._wake()  # the reader fails it unless a worker is ready
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
            # Write ours, fence, then read theirs (the worker does the same the other way
            # round, in _serve): at least one side sees the other's flag, so a queued call
            # is skipped and a started one killed, never both missed.
            flags[2 * slot + 1] = 1  # cancelled: a worker that has not started skips it
            with _fence:
                pass
            if not flags[2 * slot]:
                return  # not started: its worker will skip it
            self._kill(worker)

    def close(self) -> None:
        """Stop the workers (running calls end with WorkLetGo) and the reader. Safe
        from several threads at once (a stop and the interpreter's exit)."""
        with self._lock:
            self._closing = True
        self._wake()
        if self._reader.ident is None:  # never started
            with self._lock:
                if self._wake_w < 0:
                    return
            self._shut_down(None)
        elif self._reader is not threading.current_thread():
            self._reader.join()

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

    def _kill(self, worker: _Worker, why: str = "") -> None:
        if worker.dying:
            return
        worker.dying = True
        worker.why = why
        _signal_group(worker.pid, signal.SIGTERM)
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
        """A new worker, started on the reader's thread (the thread its death signal
        is tied to: ``PR_SET_PDEATHSIG`` fires when the thread that started it ends)."""
        ours, theirs = self._context.Pipe()
        try:
            process = self._context.Process(
                target=_serve,
                args=(theirs, self._flags, self._alive_r, os.getpid()),
                name=f"{self.name}{_WORKER}",
                daemon=False,  # a task may start processes of its own
            )
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Worker(process, ours)

    def _read(self) -> None:
        """The reader's life. If it ever ends for another reason than a close, every
        call in the pool fails saying so and the pool refuses new ones."""
        failure: BaseException | None = None
        try:
            self._read_loop()
        except BaseException as error:  # noqa: BLE001 - told to every call, below
            failure = error
            if self._started.is_set():
                _log.error("executor.pool_reader_failed", executor=self.name, exc_info=True)
            else:
                self._start_raised = error
        finally:
            self._started.set()
            self._shut_down(failure)

    def _read_loop(self) -> None:
        poller = select.poll()
        owners: dict[int, tuple[_Worker, int]] = {}  # fd: (worker, _PIPE | _EXIT | _SENTINEL)

        def watch(worker: _Worker) -> None:
            if worker.pidfd >= 0:
                fds = ((worker.fd, _PIPE), (worker.pidfd, _EXIT))
            else:
                fds = ((worker.fd, _PIPE), (worker.sentinel, _SENTINEL))
            for fd, role in fds:
                owners[fd] = (worker, role)
                poller.register(fd, select.POLLIN)

        def unwatch(fd: int) -> None:
            if owners.pop(fd, None) is not None:
                poller.unregister(fd)

        poller.register(self._wake_r, select.POLLIN)
        for _ in range(self.size):
            self._add(self._spawn(), watch)
        self._started.set()
        deadlines = self._deadlines
        dying: list[_Worker] = []  # sent SIGTERM: SIGKILL at their kill_at
        hung_up: list[_Worker] = []  # closed their pipe: stopped at their hung_up_at
        unwatched: list[_Worker] = []  # no pidfd, and their sentinel lied: asked by pid
        check_at = 0.0  # when to ask those next
        respawn_at: float | None = None  # when to start workers up to size again

        def bury(worker: _Worker) -> None:
            nonlocal respawn_at
            unwatch(worker.fd)
            unwatch(worker.pidfd if worker.pidfd >= 0 else worker.sentinel)
            for waiting in (dying, hung_up, unwatched):
                if worker in waiting:
                    waiting.remove(worker)
            self._bury(worker)
            if self._start_failures:
                backoff, most = RESPAWN_BACKOFF
                respawn_at = time.monotonic() + min(most, backoff * 2 ** (self._start_failures - 1))
            else:
                respawn_at = time.monotonic()

        while True:
            wait = -1  # poll's "no timeout"
            if deadlines or dying or hung_up or unwatched or respawn_at is not None:
                times = [worker.kill_at for worker in dying]
                times += [worker.hung_up_at for worker in hung_up]
                if unwatched:
                    times.append(check_at)
                if deadlines:
                    times.append(deadlines[0][0])
                if respawn_at is not None:
                    times.append(respawn_at)
                wait = max(0, math.ceil((min(times) - time.monotonic()) * 1000))
                wait = min(wait, _MAX_WAIT_MS)
            events = poller.poll(wait)
            self._corked = True
            for fd, _ in events:
                if fd == self._wake_r:
                    os.read(fd, 4096)
                    continue
                owner = owners.get(fd)
                if owner is None:
                    continue
                worker, role = owner
                try:
                    if role == _PIPE:
                        if not self._receive(worker):
                            unwatch(fd)  # its end is closed: it exited, or a task closed it
                            if not worker.dying:
                                worker.hung_up_at = time.monotonic() + HANG_UP_GRACE
                                hung_up.append(worker)
                    elif role == _EXIT or _exited(worker.pid):
                        bury(worker)
                    else:  # the sentinel closed, but the worker lives (a task closed it)
                        unwatch(fd)
                        unwatched.append(worker)
                        check_at = time.monotonic() + _CHECK_EVERY
                except BaseException:  # noqa: BLE001 - the reader must outlive any one worker
                    _log.error("executor.pool_failed", executor=self.name, exc_info=True)
            if self._corked_workers:  # only the reader adds to it (see _place)
                with self._lock:
                    self._uncork()
            self._corked = False
            if self._closing:
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
                _signal_group(worker.pid, signal.SIGKILL)
            for worker in [w for w in hung_up if w.hung_up_at <= now]:
                hung_up.remove(worker)
                if worker in unwatched and _exited(worker.pid):
                    continue  # buried below
                self._kill(
                    worker,
                    "stopped because it closed its pipe to the manager (a task must not "
                    "close file descriptors it did not open)",
                )
            if unwatched and check_at <= now:
                check_at = now + _CHECK_EVERY
                for worker in [w for w in unwatched if _exited(w.pid)]:
                    bury(worker)
            if self._start_error:
                self._fail_waiting()
            if self._refill:
                self._refill = False
                respawn_at = now
            if respawn_at is not None and respawn_at <= now:
                respawn_at = self._respawn(watch)

    def _add(self, worker: _Worker, watch: Callable[[_Worker], None]) -> None:
        watch(worker)
        with self._lock:
            self._workers.append(worker)
            self._fill()

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
            except BaseException:  # noqa: BLE001 - the reader must outlive any one message
                _log.error("executor.pool_failed", executor=self.name, exc_info=True)
        return True

    def _handle(self, worker: _Worker, data: bytes) -> None:
        """One message from ``worker``."""
        _, seq, kind = _REPLY.unpack_from(data)
        if kind == _READY:
            worker.ready = True
            if self._start_failures:  # they start again: start the rest of them
                self._start_failures, self._start_error = 0, ""
                self._refill = True
            return
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
            except BaseException:  # noqa: BLE001 - one bad report never stops the reader
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
        except BaseException as error:  # noqa: BLE001 - even SystemExit: it is the call's
            value, kind = (
                TypeError(
                    f"the task's {'result' if kind == _RESULT else 'exception'} did not "
                    f"unpickle in the manager: {type(error).__name__}: {_text_of(error)}"
                ),
                _ERROR,
            )
        if kind == _RESULT:
            job.done(value, None)
        elif isinstance(value, _Raised):
            job.done(None, _raised_error(job.call, value.rebuild()))
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
        """``worker`` exited: its process group is killed (a task's children), its running
        call fails (unless let go), its queued ones go to other workers (or fail, if it
        never became ready), and a fresh worker takes its place."""
        _signal_group(worker.pid, signal.SIGKILL)  # before it is reaped: its pid is ours
        worker.process.join()  # it has exited: this only reaps it
        code = worker.process.exitcode
        worker.process.close()  # its sentinel
        worker.conn.close()
        if worker.pidfd >= 0:
            os.close(worker.pidfd)
        failed: _Job | None = None
        unready: list[_Job] = []  # calls on a worker that never started: they fail
        start_error = ""
        if not worker.ready and not worker.dying and not self._closing:
            start_error = _start_error(worker.pid, code)
            self._start_failures += 1
            self._start_error = start_error
            _log.error(
                "executor.worker_start_failed",
                executor=self.name,
                pid=worker.pid,
                exitcode=code,
                failures=self._start_failures,
            )
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
                elif start_error:
                    job.finished = True
                    unready.append(job)
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
        for job in unready:
            job.done(None, _call_error(job.call, start_error))
        if failed is not None:
            why = f"died: {_exit_reason(code)}"
            if worker.why:
                why += f", {worker.why}"
            elif worker.dying:
                why += ", stopped to end another attempt that ran on it"
            failed.done(
                None,
                TaskExecutionError(
                    f"task {failed.call.task_name!r} ({failed.call.task_id}): its worker "
                    f"process (pid {worker.pid}) {why} (attempt {failed.call.attempt})",
                    failed.call.task_id,
                    {"attempt": failed.call.attempt, "exitcode": code, "pid": worker.pid},
                ),
            )
        elif not worker.dying and not start_error:
            _log.warning("executor.worker_died", executor=self.name, exitcode=code)

    def _fail_waiting(self) -> None:
        """Workers cannot start (``_start_error``): fail the calls no ready worker can
        take, instead of keeping them until one can."""
        with self._lock:
            if any(worker.ready for worker in self._workers):
                return
            failed = list(self._waiting)
            self._waiting.clear()
            for job in failed:
                job.finished = True
        for job in failed:
            if not job.let_go:
                job.done(None, _call_error(job.call, self._start_error))

    def _respawn(self, watch: Callable[[_Worker], None]) -> float | None:
        """Start workers up to ``size`` (one at a time while they fail to start); when to
        try again if starting one failed."""
        while len(self._workers) < self.size and not self._closing and not _exiting:
            if self._start_failures and any(not worker.ready for worker in self._workers):
                return None  # one trial worker at a time: its end or its ready decides
            try:
                worker = self._spawn()
            except Exception:  # noqa: BLE001 - e.g. out of file descriptors: try again soon
                _log.error("executor.spawn_failed", executor=self.name, exc_info=True)
                return time.monotonic() + 1.0
            self._add(worker, watch)
        return None

    def _shut_down(self, failure: BaseException | None) -> None:
        """Close (on the reader's thread as it ends): the workers stop (a busy one is
        terminated), and every call not told yet ends cancelled (one whose timeout was
        on its way, timed out); if the reader failed (``failure``), they fail saying so."""
        with self._lock:
            if self._wake_w < 0:
                return  # done already
            self._closing = True
            if failure is not None:
                self._broken = f": its reader failed ({type(failure).__name__}: {failure})"
            workers, self._workers = self._workers, []
            ended = list(self._waiting)
            self._waiting.clear()
            expired = [worker.expired for worker in workers if worker.expired is not None]
            for worker in workers:
                ended += worker.jobs
        try:
            self._stop_workers(workers)
        finally:  # whatever failed there, every call is told below
            with self._lock:
                for fd in (self._wake_r, self._wake_w):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._wake_w = -1
            self._alive_w.close()
            self._alive_r.close()
            _pools.discard(self)
        for job in expired:
            if not job.let_go:
                job.finished = True
                _tell_timed_out(job)
        for job in ended:
            if not job.let_go and not job.finished and job not in expired:
                job.finished = True
                if failure is None:
                    job.done(None, WorkLetGo("the process pool closed"))
                else:
                    what = f"the process pool of executor {self.name!r} stopped{self._broken}"
                    job.done(None, _call_error(job.call, what))

    def _stop_workers(self, workers: list[_Worker]) -> None:
        """Stop ``workers``: an idle one is asked to exit, a busy one is sent SIGTERM; any
        still running after ``KILL_GRACE`` gets SIGKILL, and so does every one's group."""
        for worker in workers:
            if worker.jobs or not worker.ready:  # busy (or starting): its calls are cancelled
                _signal_group(worker.pid, signal.SIGTERM)
            else:
                with contextlib.suppress(OSError):
                    _write(worker.fd, _STOP)
        _wait_exited(workers, time.monotonic() + KILL_GRACE)
        for worker in workers:
            _signal_group(worker.pid, signal.SIGKILL)  # the stubborn, and every group
            worker.process.join()
            worker.process.close()
            worker.conn.close()
            if worker.pidfd >= 0:
                os.close(worker.pidfd)


_pools: WeakSet[WorkerPool] = WeakSet()  # started and not shut down
_exiting = False  # the interpreter is exiting: no worker is started any more


@atexit.register  # registered after multiprocessing's own (imported above): runs before it
def _close_pools() -> None:
    """At exit, close every pool still open (a program that forgot ``stop()``, a Ctrl-C, a
    stop that timed out): multiprocessing's own exit handler would wait forever for a
    worker whose task ignores SIGTERM."""
    global _exiting
    _exiting = True
    for pool in list(_pools):
        with contextlib.suppress(Exception):
            pool.close()


def _importing_main_in_worker() -> bool:
    """True in one of our spawned workers while it imports the program's main module
    (multiprocessing's own test for "start a process while bootstrapping": its private
    ``_inheriting`` flag; without it, the manager still reports the worker's early exit)."""
    process = multiprocessing.current_process()
    return bool(getattr(process, "_inheriting", False)) and process.name.endswith(_WORKER)


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # reaped already (multiprocessing.active_children() reaps)


def _wait_exited(workers: list[_Worker], deadline: float) -> None:
    """Wait until every worker has exited (not reaped), or ``deadline``."""
    pending = list(workers)
    while pending:
        pending = [worker for worker in pending if not _exited(worker.pid)]
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            return
        pidfds = [worker.pidfd for worker in pending if worker.pidfd >= 0]
        if len(pidfds) == len(pending):
            poller = select.poll()
            for fd in pidfds:
                poller.register(fd, select.POLLIN)
            poller.poll(min(math.ceil(left * 1000), _MAX_WAIT_MS))
        else:
            threading.Event().wait(min(left, 0.02))  # no pidfd: ask again shortly


def _start_error(pid: int, code: int | None) -> str:
    if code == _NO_MAIN_GUARD:
        return (
            f"its worker process (pid {pid}) could not start: importing the program's main "
            "module started a process executor again. With the 'spawn' start method each "
            "worker imports the main module: put the script's top-level code under "
            '`if __name__ == "__main__":`'
        )
    return (
        f"its worker process (pid {pid}) exited before it could take a call "
        f"({_exit_reason(code)}); its error is on the worker's stderr. With the 'spawn' "
        "start method each worker imports the program's main module: a script must keep "
        'its top-level code under `if __name__ == "__main__":`'
    )


def _call_error(call: Call, what: str) -> TaskExecutionError:
    return TaskExecutionError(
        f"task {call.task_name!r} ({call.task_id}): {what} (attempt {call.attempt})",
        call.task_id,
        {"attempt": call.attempt},
    )


def _raised_error(call: Call, error: BaseException) -> BaseException:
    """The exception a task raised in its worker, or, for one that could not cross, a
    TaskExecutionError with its type, text and traceback (its RemoteError)."""
    if not isinstance(error, RemoteError):
        return error
    failure = TaskExecutionError(
        f"task {call.task_name!r} ({call.task_id}) failed: {error}",
        call.task_id,
        {"attempt": call.attempt, "error_type": error.type_name},
        original_error=error,
    )
    return failure


def _tell_timed_out(job: _Job) -> None:
    job.done(None, WorkerTimedOut(f"ran more than {job.call.timeout}s on its worker"))


def _signal_group(pid: int, signum: int) -> None:
    """Signal worker ``pid`` and its process group (a task's children), whichever exist
    (before the worker made its group, only the worker)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.kill(pid, signum)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
