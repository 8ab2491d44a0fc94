"""ProcessExecutor: attempts in worker processes, killed on timeout or cancel, real workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import (
    ActorSystem,
    ProcessExecutor,
    TaskCancellationError,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    TaskTimeoutError,
    current_task,
    messages,
)
from actors.core.call import Call, RemoteError

from .conftest import events_of, next_event

pytestmark = pytest.mark.slow  # real worker processes: CI runs these apart

WAIT = 30.0  # generous: a worker is a new interpreter, on a shared 2-core machine


# -- work: module-level, so that it pickles by name into a spawned worker ---------------------


def pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def report_then_sleep(seconds: float) -> int:
    current_task().report_progress(0.25, f"pid {os.getpid()}")
    time.sleep(seconds)
    return os.getpid()


def who_am_i() -> tuple[str, int]:
    context = current_task()
    context.report_progress(0.5, "half way")
    return context.task_id, context.attempt


def exit_on_first_attempt() -> str:
    if current_task().attempt == 1:
        os._exit(3)
    return "second attempt"


def fail() -> None:
    raise ValueError("bad input")


def cancelled_on_first_attempt() -> int:
    attempt = current_task().attempt
    if attempt == 1:
        raise concurrent.futures.CancelledError("the task's own")
    return attempt


def a_lock() -> object:
    return threading.Lock()


class NeedsTwo(Exception):  # noqa: N818 - pickles with one argument, rebuilds needing two
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)
        self.second = second


def raise_needs_two() -> None:
    raise NeedsTwo("one", "two")


class HoldsALock(Exception):  # noqa: N818 - does not pickle: it holds a lock
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_holding_a_lock() -> None:
    raise HoldsALock("locked out")


def report_from_a_thread() -> str:
    context = current_task()
    reporter = threading.Thread(target=context.report_progress, args=(0.75, "from a thread"))
    reporter.start()
    reporter.join()
    return "done"


def length(data: bytes) -> int:
    return len(data)


def ignore_sigterm_then_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    current_task().report_progress(0.5, f"pid {os.getpid()}")
    time.sleep(seconds)


def large_result(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def exit_when_told(fifo: str) -> None:
    with open(fifo) as go:  # blocks until the test opens the other end
        go.read()
    os._exit(3)


class ExitsWhenUnpickled:
    """A result that pickles in the worker and raises SystemExit when the manager loads it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.exit, ("unpickled",))


def exit_when_unpickled() -> ExitsWhenUnpickled:
    return ExitsWhenUnpickled()


def fork_then_sleep(seconds: float) -> None:
    child = os.fork()
    if child == 0:  # the grandchild: keeps the worker's pipes and sentinel open
        time.sleep(300)
        os._exit(0)
    current_task().report_progress(0.5, str(child))
    time.sleep(seconds)


def close_every_fd_then_sleep(seconds: float) -> None:
    current_task().report_progress(0.5, f"pid {os.getpid()}")
    os.closerange(3, 4096)
    time.sleep(seconds)


def start_a_child_then_sleep(seconds: float) -> None:
    child = subprocess.Popen(["sleep", "300"])
    current_task().report_progress(0.5, str(child.pid))
    time.sleep(seconds)


def run_a_process() -> int | None:
    process = multiprocessing.get_context("spawn").Process(target=os.getpid)
    process.start()
    process.join(WAIT)
    return process.exitcode


async def double_later(value: int) -> tuple[int, int]:
    await asyncio.sleep(0.01)
    return value * 2, os.getpid()


# -- helpers ----------------------------------------------------------------------------------


def alive(process_id: int) -> bool:
    """Whether the process exists and is not a zombie (an orphan's zombie waits for init)."""
    try:
        with open(f"/proc/{process_id}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(process_id, 0)
        except ProcessLookupError:
            return False
        return True


def gone_within(process_id: int, seconds: float) -> bool:
    """Whether the process is gone within ``seconds`` (asked every 50 ms: nothing to wait on)."""
    deadline = time.monotonic() + seconds
    while alive(process_id):
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.05)
    return True


@contextlib.contextmanager
def running(executor: ProcessExecutor, **system_options: Any) -> Iterator[TaskManager]:
    """A started manager whose system has ``executor``; stopped and shut down after."""
    tm = TaskManager(system=ActorSystem(executors=[executor], **system_options))
    tm.start_sync()
    try:
        yield tm
    finally:
        tm.stop_sync()
        tm.system.shutdown()


@pytest.fixture
def manager() -> Iterator[TaskManager]:
    with running(ProcessExecutor(1, name="procs")) as tm:
        yield tm
    assert multiprocessing.active_children() == []  # no worker left behind


# -- tests ------------------------------------------------------------------------------------


def test_results_come_from_worker_processes(manager: TaskManager) -> None:
    ids = [manager.register_task("pid", pid, executor_type="procs") for _ in range(3)]
    pids = {manager.future(task_id).result(WAIT) for task_id in ids}
    assert os.getpid() not in pids
    assert len(pids) == 1  # one worker, reused


def test_a_timeout_kills_the_worker_and_a_fresh_one_runs_the_next_task(
    manager: TaskManager,
) -> None:
    first = manager.future(manager.register_task("pid", pid, executor_type="procs"))
    worker = first.result(WAIT)
    started = time.monotonic()
    slow = manager.register_task("slow", sleep_then_pid, 60, executor_type="procs", timeout=1.0)
    with pytest.raises(TaskTimeoutError):
        manager.future(slow).result(WAIT)
    assert time.monotonic() - started < 15  # ended by its timeout, not after 60 s
    after = manager.future(manager.register_task("pid", pid, executor_type="procs"))
    fresh = after.result(WAIT)
    assert fresh != worker
    assert not alive(worker)  # killed, not left running the sleep


def test_a_task_that_ignores_sigterm_is_killed_and_its_timeout_told_after(
    manager: TaskManager,
) -> None:
    with events_of(manager) as events:
        stubborn = manager.register_task(
            "stubborn", ignore_sigterm_then_sleep, 60, executor_type="procs", timeout=0.5
        )
        progress = next_event(events, messages.TaskProgress, stubborn, WAIT)
        with pytest.raises(TaskTimeoutError):
            manager.future(stubborn).result(WAIT)
    assert not alive(int(progress.message.split()[1]))  # SIGKILL after the grace period
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)


def test_calls_that_end_long_before_their_timeout_are_not_held(manager: TaskManager) -> None:
    from actors.executors.pool import _Job

    ids = [
        manager.register_task("quick", pid, executor_type="procs", timeout=3600) for _ in range(300)
    ]
    for task_id in ids:
        manager.future(task_id).result(WAIT)
    gc.collect()
    held = sum(isinstance(thing, _Job) for thing in gc.get_objects())
    assert held <= 70  # not one per call until its hour is up


def test_a_worker_that_dies_fails_its_attempt_which_is_retried(manager: TaskManager) -> None:
    task_id = manager.register_task(
        "exit", exit_on_first_attempt, executor_type="procs", max_retries=1, retry_delay=0.0
    )
    assert manager.future(task_id).result(WAIT) == "second attempt"
    task = manager.get_task(task_id)
    assert task is not None
    assert task.attempt == 2


def test_a_worker_that_dies_without_retries_says_so(manager: TaskManager) -> None:
    task_id = manager.register_task("exit", exit_on_first_attempt, executor_type="procs")
    with pytest.raises(TaskExecutionError, match=r"worker process \(pid \d+\) died: exit code 3"):
        manager.future(task_id).result(WAIT)
    # The pool keeps working.
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)


def test_cancel_kills_a_running_task_and_progress_arrives(manager: TaskManager) -> None:
    with events_of(manager) as events:
        task_id = manager.register_task("long", report_then_sleep, 60, executor_type="procs")
        progress = next_event(events, messages.TaskProgress, task_id, WAIT)
        assert progress.fraction == 0.25
        worker = int(progress.message.split()[1])
        assert manager.get_task_progress(task_id) == (0.25, f"pid {worker}")
        assert manager.cancel_task_sync(task_id)
        with pytest.raises(TaskCancellationError):
            manager.future(task_id).result(WAIT)
        fresh = manager.future(manager.register_task("pid", pid, executor_type="procs"))
        assert fresh.result(WAIT) != worker
        assert not alive(worker)


def test_current_task_works_in_the_worker(manager: TaskManager) -> None:
    task_id = manager.register_task("who", who_am_i, executor_type="procs")
    assert manager.future(task_id).result(WAIT) == (task_id, 1)
    assert manager.get_task_progress(task_id) == (1.0, "half way")  # reported before the end


def test_a_coroutine_function_runs_on_a_loop_in_the_worker(manager: TaskManager) -> None:
    task_id = manager.register_task("double", double_later, 21, executor_type="procs")
    value, worker = manager.future(task_id).result(WAIT)
    assert value == 42
    assert worker != os.getpid()


def test_an_exception_in_the_worker_is_the_task_error(manager: TaskManager) -> None:
    task_id = manager.register_task("fail", fail, executor_type="procs")
    with pytest.raises(TaskExecutionError, match="ValueError: bad input"):
        manager.future(task_id).result(WAIT)


def test_a_cancelled_error_the_task_raises_is_its_failure_not_an_interruption(
    manager: TaskManager,
) -> None:
    # Only the manager's own let-go (a timeout, a cancel) interrupts an attempt.
    retried = manager.register_task(
        "own", cancelled_on_first_attempt, executor_type="procs", max_retries=1, retry_delay=0.0
    )
    assert manager.future(retried).result(WAIT) == 2
    once = manager.register_task("once", cancelled_on_first_attempt, executor_type="procs")
    with pytest.raises(TaskExecutionError, match="CancelledError: the task's own"):
        manager.future(once).result(WAIT)


def test_an_exception_in_the_worker_keeps_its_traceback(manager: TaskManager) -> None:
    task_id = manager.register_task("fail", fail, executor_type="procs")
    with pytest.raises(TaskExecutionError) as raised:
        manager.future(task_id).result(WAIT)
    original = raised.value.__cause__
    assert isinstance(original, ValueError)
    assert "in fail" in str(original.__cause__)  # the worker's traceback, as its cause
    assert 'raise ValueError("bad input")' in str(original.__cause__)


def test_a_result_that_does_not_pickle_fails_the_attempt_clearly(manager: TaskManager) -> None:
    task_id = manager.register_task("lock", a_lock, executor_type="procs")
    with pytest.raises(TaskExecutionError, match=r"result does not pickle.*lock"):
        manager.future(task_id).result(WAIT)
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)


@pytest.mark.parametrize(
    ("func", "type_name", "text"),
    [
        (raise_needs_two, f"{__name__}.NeedsTwo", "one"),  # pickles, does not unpickle
        (raise_holding_a_lock, f"{__name__}.HoldsALock", "locked out"),  # does not pickle
    ],
)
def test_an_exception_that_cannot_cross_keeps_its_type_text_and_traceback(
    manager: TaskManager, func: Any, type_name: str, text: str
) -> None:
    task_id = manager.register_task("odd", func, executor_type="procs")
    with pytest.raises(TaskExecutionError) as raised:
        manager.future(task_id).result(WAIT)
    error = raised.value
    assert error.message == f"task 'odd' ({task_id}) failed: {type_name}: {text}"
    assert error.details["error_type"] == type_name
    original = error.original_error
    assert isinstance(original, RemoteError)
    assert (original.type_name, original.message) == (type_name, text)
    assert f"in {func.__name__}" in original.traceback  # the worker's traceback
    assert original.traceback in str(original.__cause__)
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)


def test_progress_from_a_thread_of_the_task_arrives(manager: TaskManager) -> None:
    task_id = manager.register_task("thread", report_from_a_thread, executor_type="procs")
    assert manager.future(task_id).result(WAIT) == "done"
    assert manager.get_task_progress(task_id) == (1.0, "from a thread")


def test_a_worker_killed_while_idle_is_replaced(
    manager: TaskManager, log_events: list[dict[str, object]]
) -> None:
    worker = manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)
    os.kill(worker, signal.SIGKILL)
    fresh = manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)
    assert fresh != worker
    died = [event for event in log_events if event["event"] == "executor.worker_died"]
    assert died
    assert died[0]["exitcode"] == -signal.SIGKILL
    assert died[0]["level"] == "warning"


def test_the_pool_is_idle_once_a_dead_worker_is_replaced(manager: TaskManager) -> None:
    worker = manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)
    os.kill(worker, signal.SIGKILL)
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)
    reader = next(thread for thread in threading.enumerate() if thread.name == "procs-pool")
    clock = time.pthread_getcpuclockid(reader.ident or 0)
    before = time.clock_gettime(clock)
    threading.Event().wait(0.5)  # an interval to measure, not something to wait for
    assert time.clock_gettime(clock) - before < 0.1  # it sleeps in poll, it does not spin


def test_work_that_does_not_pickle_is_refused_at_registration(manager: TaskManager) -> None:
    with pytest.raises(TypeError, match="func must pickle"):
        manager.register_task("lambda", lambda: 1, executor_type="procs")
    with pytest.raises(TypeError, match=r"args\[1\] must pickle.*lock"):
        manager.register_task("lock", pid, args=(1, threading.Lock()), executor_type="procs")
    with pytest.raises(TypeError, match=r"kwargs\['lock'\] must pickle"):
        manager.register_task("lock", pid, kwargs={"lock": threading.Lock()}, executor_type="procs")
    assert manager.get_all_tasks() == []  # nothing half-registered


def test_process_is_made_on_first_use() -> None:
    tm = TaskManager()
    tm.start_sync()
    try:
        assert "process" not in tm.system.executors
        task_id = tm.register_task("pid", pid, executor_type="process")
        assert isinstance(tm.system.executors["process"], ProcessExecutor)
        assert tm.future(task_id).result(WAIT) != os.getpid()
        with pytest.raises(TypeError, match="func must pickle"):
            tm.register_task("lambda", lambda: 1, executor_type="process")
    finally:
        tm.stop_sync()
    assert multiprocessing.active_children() == []
    assert tm.get_task(task_id) is not None
    assert tm.get_task_status(task_id) is TaskStatus.COMPLETED


def test_a_blocked_application_loop_does_not_stop_a_process_task() -> None:
    """A coroutine task ends on the application's loop, then the application blocks the
    loop waiting for a process task registered meanwhile: that task is handed to a worker
    and ends (the scheduler's work is never left queued on the application's loop)."""

    async def main() -> None:
        async with TaskManager(max_concurrent_tasks=4) as tm:
            tm.system.add_executor(ProcessExecutor(1, name="procs"))
            for _round in range(3):
                assert await tm.execute_task(tm.register_task("double", double_later, 2)) == (
                    4,
                    os.getpid(),  # on this loop
                )
                task_id = tm.register_task("pid", pid, executor_type="procs")
                assert tm.future(task_id).result(WAIT) != os.getpid()  # blocks the loop

    asyncio.run(main())
    assert multiprocessing.active_children() == []


def test_process_executor_from_config() -> None:
    config = {"executors": [{"name": "cpu", "type": "process", "max_workers": 2}]}
    system = ActorSystem.from_config(config, autostart=False)
    executor = system.executors["cpu"]
    assert isinstance(executor, ProcessExecutor)
    assert executor.capacity == 2
    system.shutdown()


def test_bad_max_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ProcessExecutor(0)
    with pytest.raises(TypeError, match="max_workers"):
        ProcessExecutor("2")  # type: ignore[arg-type]


# -- prefetch: attempts queued in the pool behind each worker's running one -------------------


@pytest.fixture
def one_worker_prefetching() -> Iterator[TaskManager]:
    with running(ProcessExecutor(1, prefetch=2, name="procs"), max_concurrent_tasks=8) as tm:
        yield tm
    assert multiprocessing.active_children() == []


def test_a_queued_attempts_timeout_counts_from_its_start(
    one_worker_prefetching: TaskManager,
) -> None:
    tm = one_worker_prefetching
    with events_of(tm) as events:
        # One worker: the second waits in the pool while the first runs 1.2 s, longer than
        # its own timeout; it must not be timed out before it has started.
        first = tm.register_task("first", report_then_sleep, 1.2, executor_type="procs")
        second = tm.register_task("second", pid, executor_type="procs", timeout=0.8)
        next_event(events, messages.TaskProgress, first, WAIT)  # the first is running
        assert tm.get_task_status(second) is TaskStatus.RUNNING  # handed to the pool already
        worker = tm.future(first).result(WAIT)
        assert tm.future(second).result(WAIT) == worker  # ran, on the same worker


def test_a_queued_attempt_still_times_out_once_it_runs(
    one_worker_prefetching: TaskManager,
) -> None:
    tm = one_worker_prefetching
    first = tm.register_task("first", sleep_then_pid, 0.3, executor_type="procs")
    slow = tm.register_task("slow", sleep_then_pid, 60, executor_type="procs", timeout=0.5)
    worker = tm.future(first).result(WAIT)
    with pytest.raises(TaskTimeoutError, match=r"timed out after 0\.5s"):
        tm.future(slow).result(WAIT)
    assert not alive(worker)  # the hard kill still applies


def test_cancelling_a_queued_attempt_kills_no_worker(one_worker_prefetching: TaskManager) -> None:
    tm = one_worker_prefetching
    with events_of(tm) as events:
        first = tm.register_task("first", report_then_sleep, 1.0, executor_type="procs")
        queued = tm.register_task("queued", report_then_sleep, 60, executor_type="procs")
        progress = next_event(events, messages.TaskProgress, first, WAIT)
        worker = int(progress.message.split()[1])
        assert tm.get_task_status(queued) is TaskStatus.RUNNING  # in the pool's queue
        assert tm.cancel_task_sync(queued)
        with pytest.raises(TaskCancellationError):
            tm.future(queued).result(WAIT)
        assert tm.future(first).result(WAIT) == worker  # its worker was not killed
        after = tm.register_task("after", pid, executor_type="procs")
        assert tm.future(after).result(WAIT) == worker  # nor replaced: the queued call skipped
        assert tm.get_task_progress(queued) == (0.0, "")  # it never ran: no progress came


def test_calls_queued_on_a_worker_that_dies_run_on_its_replacement(
    one_worker_prefetching: TaskManager, tmp_path: pathlib.Path
) -> None:
    tm = one_worker_prefetching
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    with events_of(tm) as events:
        doomed = tm.register_task("doomed", exit_when_told, str(fifo), executor_type="procs")
        queued = [tm.register_task("queued", pid, executor_type="procs") for _ in range(2)]
        for task_id in queued:  # one worker, prefetch 2: both go to its pipe, behind doomed
            next_event(events, messages.TaskStarted, task_id, WAIT)
    fifo.write_text("go")
    with pytest.raises(TaskExecutionError, match="died: exit code 3"):
        tm.future(doomed).result(WAIT)
    workers = {tm.future(task_id).result(WAIT) for task_id in queued}  # not failed with it
    assert len(workers) == 1
    assert all(alive(worker) for worker in workers)  # the replacement ran them


def test_large_calls_never_block_the_pool_behind_a_busy_worker(
    one_worker_prefetching: TaskManager,
) -> None:
    tm = one_worker_prefetching
    with events_of(tm) as events:
        busy = tm.register_task("busy", report_then_sleep, 60, executor_type="procs")
        next_event(events, messages.TaskProgress, busy, WAIT)
        data = b"x" * (1024 * 1024)  # far more than a pipe holds while its worker is busy
        large = [tm.register_task("large", length, data, executor_type="procs") for _ in range(2)]
        for task_id in large:  # handed to the executor (prefetch 2) while busy runs
            next_event(events, messages.TaskStarted, task_id, WAIT)
        # Were a large call written to the busy worker's pipe, that write would hold the
        # pool until the 60 s sleep ended, and this cancel (which kills the worker) with it.
        assert tm.cancel_task_sync(busy)
        with pytest.raises(TaskCancellationError):
            tm.future(busy).result(WAIT)
        assert [tm.future(task_id).result(WAIT) for task_id in large] == [len(data)] * 2


def test_a_large_result_crosses_in_many_reads(manager: TaskManager) -> None:
    size = 3 * 1024 * 1024  # many reads of the pipe, on both sides
    task_id = manager.register_task("large", large_result, size, executor_type="procs")
    assert manager.future(task_id).result(WAIT) == large_result(size)


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 7, 64, 10_000])
def test_frames_are_whole_however_the_stream_is_cut(chunk: int) -> None:
    from actors.executors.pool import _LENGTH, _Frames

    bodies = [b"", b"a", b"bc" * 100, bytes(range(256)) * 40, b"z"]
    stream = b"".join(_LENGTH.pack(len(body)) + body for body in bodies)
    frames = _Frames()
    received = []
    for start in range(0, len(stream), chunk):
        received += frames.feed(stream[start : start + chunk])
    assert [frame[4:] for frame in received] == bodies
    assert not frames.rest


def test_max_concurrent_tasks_caps_what_is_handed_over() -> None:
    with (
        running(ProcessExecutor(1, prefetch=4, name="procs"), max_concurrent_tasks=2) as tm,
        events_of(tm) as events,
    ):
        ids = [
            tm.register_task("t", report_then_sleep, 0.5, executor_type="procs") for _ in range(4)
        ]
        next_event(events, messages.TaskProgress, ids[0])
        statuses = [tm.get_task_status(task_id) for task_id in ids]
        assert statuses.count(TaskStatus.RUNNING) == 2  # not 4: the system's limit holds
        metrics = tm.get_metrics()["executors"]["procs"]
        assert metrics["busy"] == 2
        assert (metrics["capacity"], metrics["prefetch"]) == (1, 4)
        for task_id in ids:
            tm.future(task_id).result(WAIT)


def test_bad_prefetch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"prefetch must be an integer from 0 to 1000, got -1"):
        ProcessExecutor(1, prefetch=-1)
    with pytest.raises(TypeError, match="prefetch must be an integer"):
        ProcessExecutor(1, prefetch=1.5)  # type: ignore[arg-type]


# -- the reader: no single message or worker stops it -----------------------------------------


def test_a_timeout_of_thirty_days_does_not_stop_the_reader(manager: TaskManager) -> None:
    # poll() takes an int of milliseconds: 30 days of them overflowed it.
    ids = [
        manager.register_task("long", pid, executor_type="procs", timeout=30 * 86400)
        for _ in range(2)
    ]
    assert all(manager.future(task_id).result(WAIT) for task_id in ids)


def test_a_result_that_raises_system_exit_when_unpickled_fails_only_its_task(
    manager: TaskManager,
) -> None:
    task_id = manager.register_task("exit", exit_when_unpickled, executor_type="procs")
    with pytest.raises(TaskExecutionError, match=r"did not unpickle.*SystemExit: unpickled"):
        manager.future(task_id).result(WAIT)
    assert manager.future(manager.register_task("pid", pid, executor_type="procs")).result(WAIT)


@pytest.fixture(params=["pidfd", "waitid"])
def reaping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the pool learns a worker's exit: a pidfd (Linux), or asking waitid."""
    if request.param == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd here")
    if request.param == "waitid":
        monkeypatch.setattr("actors.executors.pool._PIDFD", False)
    return str(request.param)


def test_a_forked_child_holding_the_workers_pipes_does_not_delay_its_timeout(
    reaping: str,
) -> None:
    with running(ProcessExecutor(1, name="procs")) as tm, events_of(tm) as events:
        started = time.monotonic()
        task_id = tm.register_task("fork", fork_then_sleep, 60, executor_type="procs", timeout=1.0)
        grandchild = int(next_event(events, messages.TaskProgress, task_id, WAIT).message)
        with pytest.raises(TaskTimeoutError):
            tm.future(task_id).result(WAIT)
        assert time.monotonic() - started < 1.0 + 5.0  # not when the grandchild exits
        assert gone_within(grandchild, WAIT)  # killed with its worker's process group
        assert tm.future(tm.register_task("pid", pid, executor_type="procs")).result(WAIT)


def test_a_task_that_closes_its_workers_fds_does_not_freeze_the_pool(reaping: str) -> None:
    with (
        running(ProcessExecutor(2, prefetch=0, name="procs")) as tm,
        events_of(tm) as events,
    ):
        closer = tm.register_task("closer", close_every_fd_then_sleep, 60, executor_type="procs")
        worker = int(next_event(events, messages.TaskProgress, closer, WAIT).message.split()[1])
        started = time.monotonic()
        quick = [tm.register_task("quick", sleep_then_pid, 0.2, executor_type="procs")]
        quick += [tm.register_task("quick", pid, executor_type="procs") for _ in range(3)]
        for task_id in quick:
            assert tm.future(task_id).result(WAIT) != worker
        assert time.monotonic() - started < 5.0  # the 60 s sleep holds nothing up
        with pytest.raises(TaskExecutionError, match="closed its pipe to the manager"):
            tm.future(closer).result(WAIT)
        assert gone_within(worker, WAIT)


@pytest.mark.parametrize("end", ["timeout", "cancel", "stop"])
def test_a_tasks_own_children_die_with_its_worker(end: str) -> None:
    with running(ProcessExecutor(1, name="procs")) as tm, events_of(tm) as events:
        task_id = tm.register_task(
            "parent",
            start_a_child_then_sleep,
            60,
            executor_type="procs",
            timeout=1.0 if end == "timeout" else None,
        )
        child = int(next_event(events, messages.TaskProgress, task_id, WAIT).message)
        if end == "timeout":
            with pytest.raises(TaskTimeoutError):
                tm.future(task_id).result(WAIT)
        elif end == "cancel":
            assert tm.cancel_task_sync(task_id)
        else:
            tm.stop_sync(timeout=WAIT)
        assert gone_within(child, WAIT)


def test_a_task_may_start_processes_of_its_own(manager: TaskManager) -> None:
    task_id = manager.register_task("nested", run_a_process, executor_type="procs")
    assert manager.future(task_id).result(WAIT) == 0  # workers are not daemonic


def test_if_the_reader_ever_fails_every_call_fails_saying_so() -> None:
    from actors.executors.pool import WorkerPool

    outcomes: list[concurrent.futures.Future[Any]] = []

    def collect() -> Any:
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        outcomes.append(outcome)
        return lambda result, error: outcome.set_exception(error) if error else None

    pool = WorkerPool(1, 2, name="broken", report=lambda *_: None)
    pool.start()
    try:
        for n in range(3):
            pool.submit(Call(time.sleep, (60,), {}, f"t{n}", "sleep", 1, 2, False), collect())
        os.close(pool._wake_r)  # a fault the reader cannot read past
        pool._wake()
        for outcome in outcomes:
            error = outcome.exception(WAIT)
            assert isinstance(error, TaskExecutionError)
            assert "process pool of executor 'broken' stopped: its reader failed" in str(error)
        with pytest.raises(RuntimeError, match="closed: its reader failed"):
            pool.submit(Call(pid, (), {}, "t", "pid", 1, 2, False), collect())
    finally:
        pool.close()
    assert multiprocessing.active_children() == []
