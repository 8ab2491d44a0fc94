"""DaskExecutor: attempts as Dask tasks on a real LocalCluster, and on a real `dask scheduler`
with `dask worker` processes (one of them killed mid-task)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest

from actors import (
    ActorSystem,
    DaskExecutor,
    TaskCancellationError,
    TaskExecutionError,
    TaskManager,
    TaskPriority,
    TaskStatus,
    TaskTimeoutError,
    current_task,
    messages,
)
from supervision import ConfigError

from .conftest import events_of, next_event

pytestmark = pytest.mark.slow  # real Dask clusters: CI runs these apart

WAIT = 30.0  # generous: a shared 2-core machine; every wait ends as soon as its event does
ROOT = Path(__file__).resolve().parents[2]

# Work runs in worker threads of this process (LocalCluster(processes=False)): these
# module-level events reach it (a function pickles by reference, its globals are ours).
started = threading.Event()
release = threading.Event()


@pytest.fixture(autouse=True)
def _reset_events() -> Iterator[None]:
    started.clear()
    release.clear()
    yield
    release.set()  # never leave a worker thread blocked


# -- work -------------------------------------------------------------------------------------


def where() -> tuple[str, int]:
    return distributed.get_worker().address, os.getpid()


def add(a: int, b: int) -> int:
    return a + b


def my_dask_priority() -> int:
    worker = distributed.get_worker()
    key = worker.get_current_task()
    return -worker.state.tasks[key].priority[0]  # Dask orders by (-priority, ...)


def block_until_released() -> str:
    started.set()
    assert release.wait(WAIT)
    return "released"


def report_then_block() -> str:
    current_task().report_progress(0.25, "a quarter")
    started.set()
    assert release.wait(WAIT)
    return "done"


def who_am_i() -> tuple[str, int]:
    context = current_task()
    context.report_progress(0.5, "half way")
    return context.task_id, context.attempt


def cancelled_on_first_attempt() -> int:
    attempt = current_task().attempt
    if attempt == 1:
        raise concurrent.futures.CancelledError("the task's own")
    return attempt


def fail_first_attempt() -> int:
    attempt = current_task().attempt
    if attempt == 1:
        raise ValueError("bad input")
    return attempt


async def double_later(value: int) -> int:
    import asyncio

    await asyncio.sleep(0.01)
    return value * 2


def report_then_sleep_on_first_attempt() -> int:
    """Attempt 1 reports its pid and sleeps (its worker is killed); attempt 2 returns."""
    if current_task().attempt == 1:
        current_task().report_progress(0.1, f"pid {os.getpid()}")
        time.sleep(60)
    return os.getpid()


# -- helpers ----------------------------------------------------------------------------------


def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (cheap, local reads) until it holds, or fail after WAIT."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def local(**options: Any) -> DaskExecutor:
    """A DaskExecutor on its own in-process LocalCluster (fast to start and stop)."""
    settings: dict[str, Any] = {
        "processes": False,
        "n_workers": 1,
        "threads_per_worker": 2,
        "dashboard_address": ":0",
    }
    return DaskExecutor(name="dask", **{**settings, **options})


@pytest.fixture
def make_manager() -> Iterator[Callable[..., TaskManager]]:
    managers: list[TaskManager] = []

    def make(executor: DaskExecutor) -> TaskManager:
        tm = TaskManager(system=ActorSystem(executors=[executor]))
        managers.append(tm)
        tm.start_sync()
        return tm

    yield make
    for tm in managers:
        release.set()
        tm.stop_sync()
        tm.system.shutdown()


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager]) -> TaskManager:
    return make_manager(local())


# -- a LocalCluster ---------------------------------------------------------------------------


def test_a_dag_runs_on_dask_workers(manager: TaskManager) -> None:
    executor = manager.system.executors["dask"]
    assert isinstance(executor, DaskExecutor)
    assert executor.capacity == 2  # one worker, two threads
    assert executor.client is not None
    # A worker's death fails the task at once: Dask does not re-run it behind our back.
    assert (
        executor.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
        == 0
    )
    first = manager.register_task("first", add, 1, 2, executor_type="dask")
    second = manager.register_task("second", add, 3, 4, executor_type="dask")
    total = manager.register_task(
        "total", add, 0, 0, executor_type="dask", dependencies=[first, second]
    )
    where_id = manager.register_task("where", where, executor_type="dask", dependencies=[total])
    assert manager.future(total).result(WAIT) == 0
    assert manager.future(first).result(WAIT) == 3
    worker, _pid = manager.future(where_id).result(WAIT)
    assert executor.client is not None
    assert worker in executor.client.scheduler_info()["workers"]
    order = [manager.get_task(i) for i in (first, second, total, where_id)]
    assert all(task is not None and task.attempt == 1 for task in order)


def test_handles_give_their_results_to_tasks_on_dask_workers(manager: TaskManager) -> None:
    on_dask = manager.options(executor_type="dask")
    first, second = on_dask.submit(add, 1, 2), manager.submit(add, 3, 4)  # one runs here
    total = on_dask.submit(add, first, second)  # the results travel, not the handles
    assert total.result(WAIT) == 10
    assert [h.result(WAIT) for h in on_dask.map(abs, [-1, -2])] == [1, 2]


def test_the_task_priority_is_the_dask_priority(manager: TaskManager) -> None:
    low = manager.register_task(
        "low", my_dask_priority, executor_type="dask", priority=TaskPriority.LOW
    )
    high = manager.register_task(
        "high", my_dask_priority, executor_type="dask", priority=TaskPriority.CRITICAL
    )
    assert manager.future(low).result(WAIT) == int(TaskPriority.LOW)
    assert manager.future(high).result(WAIT) == int(TaskPriority.CRITICAL)


def test_a_timeout_ends_the_attempt_at_once_and_the_next_task_runs(manager: TaskManager) -> None:
    stuck = manager.register_task("stuck", block_until_released, executor_type="dask", timeout=0.3)
    assert started.wait(WAIT)
    began = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        manager.future(stuck).result(WAIT)
    assert time.monotonic() - began < 5  # ended by its timeout: the work still runs
    after = manager.register_task("after", add, 1, 1, executor_type="dask")
    assert manager.future(after).result(WAIT) == 2
    assert not release.is_set()  # the stuck thread is still running on its worker


def drop_worker_events(executor: DaskExecutor) -> None:
    """From now on the scheduler forwards none of the executor's worker events (an
    attempt's start, its progress, its thread's return) to the client, as when they are
    lost on the way (a worker drops what it sends while not connected to the scheduler;
    a restarted scheduler has not heard of the executor's subscription yet). Sent on
    the client's stream ahead of any later submission: it reaches the scheduler first."""
    assert executor.client is not None
    executor.client.unsubscribe_topic(executor._topic)


def test_a_timeout_is_kept_when_the_start_event_of_the_attempt_is_lost(
    manager: TaskManager,
) -> None:
    # The CI hang: the timeout was armed only when the start event came; now the client
    # looks for the attempt on the workers once it could have run its whole timeout.
    executor = manager.system.executors["dask"]
    assert isinstance(executor, DaskExecutor)
    drop_worker_events(executor)
    stuck = manager.register_task("stuck", block_until_released, executor_type="dask", timeout=0.3)
    assert started.wait(WAIT)
    began = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        manager.future(stuck).result(10)  # without the fix: TimeoutError here, not a hang
    assert time.monotonic() - began < 5
    assert manager.get_metrics()["executors"]["dask"]["abandoned"] == 1  # its thread runs on
    after = manager.register_task("after", add, 1, 1, executor_type="dask")
    assert manager.future(after).result(WAIT) == 2
    assert not release.is_set()


def test_waiting_for_a_worker_thread_does_not_count_against_the_timeout(
    make_manager: Callable[..., TaskManager], log_events: list[dict[str, Any]]
) -> None:
    # One worker thread, held by "first"; "queued" (timeout 0.3s) waits behind it on the
    # cluster, its start events lost. Looked for after 0.3s, it is found waiting, not
    # running: its timeout has not begun, and it runs in full once the thread is free.
    executor = local(threads_per_worker=1)
    tm = make_manager(executor)
    drop_worker_events(executor)
    first = tm.register_task("first", block_until_released, executor_type="dask")
    assert started.wait(WAIT)
    queued = tm.register_task("queued", add, 1, 2, executor_type="dask", timeout=0.3)
    key = f"queued-{queued}-1"

    def looked_for() -> bool:
        return any(e["event"] == "dask.start_unseen" and e.get("key") == key for e in log_events)

    eventually(looked_for, "the client looked for the queued attempt on the workers")
    assert tm.get_task_status(queued) is TaskStatus.RUNNING  # handed to the cluster
    release.set()
    assert tm.future(first).result(WAIT) == "released"
    assert tm.future(queued).result(WAIT) == 3


def test_attempts_that_end_before_their_timeout_leave_no_timer(manager: TaskManager) -> None:
    executor = manager.system.executors["dask"]
    ids = [
        manager.register_task("add", add, 1, 2, executor_type="dask", timeout=3600)
        for _ in range(100)
    ]
    assert [manager.future(task_id).result(30) for task_id in ids] == [3] * 100
    gc.collect()
    armed = [
        thing
        for thing in gc.get_objects()
        if isinstance(thing, asyncio.TimerHandle)
        and getattr(thing._callback, "__self__", None) is executor
        and not thing.cancelled()
    ]
    assert armed == []  # each was cancelled when its attempt ended, not held for the hour


def test_an_end_is_learned_when_the_dask_future_has_its_event_already(
    make_manager: Callable[..., TaskManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a distributed whose futures make their event at once would: the executor cannot
    # put its own in, and a coroutine waits on the future's instead.
    from distributed.client import FutureState

    made = FutureState.__init__

    def eager(state: FutureState, key: Any) -> None:
        made(state, key)
        state._get_event()

    monkeypatch.setattr(FutureState, "__init__", eager)
    manager = make_manager(local())
    ids = [manager.register_task("add", add, i, 1, executor_type="dask") for i in range(20)]
    assert [manager.future(task_id).result(30) for task_id in ids] == list(range(1, 21))


def test_cancel_ends_a_running_attempt_and_cancels_its_dask_task(manager: TaskManager) -> None:
    executor = manager.system.executors["dask"]
    assert isinstance(executor, DaskExecutor)
    client = executor.client
    assert client is not None
    task_id = manager.register_task("long", block_until_released, executor_type="dask")
    assert started.wait(WAIT)
    key = f"long-{task_id}-1"

    def on_scheduler() -> bool:
        return key in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))

    assert on_scheduler()
    assert manager.cancel_task_sync(task_id)
    with pytest.raises(TaskCancellationError):
        manager.future(task_id).result(WAIT)
    eventually(lambda: not on_scheduler(), "the Dask task was cancelled")
    assert manager.future(manager.register_task("next", add, 2, 2, executor_type="dask")).result(
        WAIT
    )


def test_progress_reaches_getters_and_subscribers(manager: TaskManager) -> None:
    with events_of(manager) as events:
        task_id = manager.register_task("report", report_then_block, executor_type="dask")
        progress = next_event(events, messages.TaskProgress, task_id, WAIT)
        assert (progress.fraction, progress.message) == (0.25, "a quarter")
        assert manager.get_task_progress(task_id) == (0.25, "a quarter")
        release.set()
        assert manager.future(task_id).result(WAIT) == "done"


def test_current_task_works_in_the_dask_task(manager: TaskManager) -> None:
    task_id = manager.register_task("who", who_am_i, executor_type="dask")
    assert manager.future(task_id).result(WAIT) == (task_id, 1)
    assert manager.get_task_progress(task_id) == (1.0, "half way")


def test_a_raised_error_is_retried_under_the_task_policy(manager: TaskManager) -> None:
    retried = manager.register_task(
        "retried", fail_first_attempt, executor_type="dask", max_retries=1, retry_delay=0.0
    )
    assert manager.future(retried).result(WAIT) == 2
    once = manager.register_task("once", fail_first_attempt, executor_type="dask")
    with pytest.raises(TaskExecutionError, match="ValueError: bad input"):
        manager.future(once).result(WAIT)


def test_a_cancelled_error_the_task_raises_is_its_failure_not_an_interruption(
    manager: TaskManager,
) -> None:
    # Only the manager's own let-go (a timeout, a cancel) interrupts an attempt.
    retried = manager.register_task(
        "own", cancelled_on_first_attempt, executor_type="dask", max_retries=1, retry_delay=0.0
    )
    assert manager.future(retried).result(WAIT) == 2
    once = manager.register_task("once", cancelled_on_first_attempt, executor_type="dask")
    with pytest.raises(TaskExecutionError, match="CancelledError: the task's own"):
        manager.future(once).result(WAIT)


def test_a_closed_client_fails_the_attempts_it_carried_and_new_ones(
    make_manager: Callable[..., TaskManager],
) -> None:
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        tm = make_manager(DaskExecutor(client=client, name="dask"))
        running = tm.register_task("running", block_until_released, executor_type="dask")
        assert started.wait(WAIT)
        client.close()  # by its owner, while the manager uses it
        with pytest.raises(TaskExecutionError, match="its Dask client is clos"):
            tm.future(running).result(WAIT)
        new = tm.register_task("new", add, 1, 2, executor_type="dask")
        with pytest.raises(TaskExecutionError, match="its Dask client is closed"):
            tm.future(new).result(WAIT)
        with pytest.raises(ValueError, match=r"client must be open, .*status 'closed'"):
            DaskExecutor(client=client)
        release.set()
        tm.stop_sync()
        tm.system.shutdown()


def test_threads_held_by_timed_out_work_are_abandoned_and_queued_attempts_wait_bounded(
    make_manager: Callable[..., TaskManager],
) -> None:
    # One worker thread: "stuck" holds it past its timeout (Dask cannot stop the thread);
    # "queued" was handed to the cluster behind it (prefetch) and cannot start.
    executor = local(threads_per_worker=1, start_wait=0.5)
    tm = make_manager(executor)
    stuck = tm.register_task("stuck", block_until_released, executor_type="dask", timeout=0.3)
    queued = tm.register_task("queued", add, 1, 2, executor_type="dask")
    assert started.wait(WAIT)
    with pytest.raises(TaskTimeoutError):
        tm.future(stuck).result(WAIT)
    load = tm.get_metrics()["executors"]["dask"]  # busy: the held thread, and "queued"
    assert (load["capacity"], load["busy"], load["abandoned"]) == (0, 2, 1)
    assert tm.get_metrics()["abandoned_tasks"] == 1
    with pytest.raises(TaskExecutionError, match=r"waited more than 0\.5s to start"):
        tm.future(queued).result(WAIT)
    later = tm.register_task("later", add, 2, 2, executor_type="dask")
    assert tm.get_task_status(later) is TaskStatus.PENDING  # no capacity: not handed over
    release.set()  # the held thread returns: capacity comes back
    assert tm.future(later).result(WAIT) == 4
    load = tm.get_metrics()["executors"]["dask"]
    assert (load["capacity"], load["abandoned"]) == (1, 0)


def test_a_coroutine_function_runs_in_the_dask_task(manager: TaskManager) -> None:
    task_id = manager.register_task("double", double_later, 21, executor_type="dask")
    assert manager.future(task_id).result(WAIT) == 42


def test_closures_pickle_with_cloudpickle_unless_they_capture_what_does_not(
    manager: TaskManager,
) -> None:
    base = 40
    closure = manager.register_task("closure", lambda: base + 2, executor_type="dask")
    assert manager.future(closure).result(WAIT) == 42
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"func must pickle.*cloudpickle.*closure"):
        manager.register_task("locked", lambda: lock.locked(), executor_type="dask")
    with pytest.raises(TypeError, match=r"args\[0\] must pickle"):
        manager.register_task("lock", add, lock, 1, executor_type="dask")
    assert [task.task_id for task in manager.get_all_tasks()] == [closure]  # nothing half-done


def test_capacity_follows_the_workers(make_manager: Callable[..., TaskManager]) -> None:
    executor = local(threads_per_worker=1)
    tm = make_manager(executor)
    assert executor.capacity == 1
    first = tm.register_task("first", block_until_released, executor_type="dask")
    assert started.wait(WAIT)
    second = tm.register_task("second", add, 1, 1, executor_type="dask")
    assert tm.get_task_status(second) is TaskStatus.PENDING  # no thread free: not sent
    cluster = executor.cluster
    assert cluster is not None
    cluster.scale(2)  # a second worker joins: capacity 2, and the scheduler starts "second"
    eventually(lambda: executor.capacity == 2, "capacity 2 after a worker joined")
    eventually(
        lambda: tm.get_task_status(second) is not TaskStatus.PENDING, "the second task started"
    )
    release.set()
    assert tm.future(first).result(WAIT) == "released"
    assert tm.future(second).result(WAIT) == 2
    cluster.scale(1)
    eventually(lambda: executor.capacity == 1, "capacity 1 after a worker left")


def test_a_given_client_is_used_and_left_open(make_manager: Callable[..., TaskManager]) -> None:
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        tm = make_manager(DaskExecutor(client=client, name="dask"))
        assert tm.future(tm.register_task("add", add, 1, 2, executor_type="dask")).result(WAIT) == 3
        tm.stop_sync()
        tm.system.shutdown()
        assert client.status == "running"
        assert client.submit(add, 2, 3).result(WAIT) == 5


def test_the_executor_from_config() -> None:
    config = {
        "executors": [
            {"name": "remote", "type": "dask", "address": "tcp://127.0.0.1:8786"},
            {"name": "local", "type": "dask", "processes": False, "n_workers": 2},
        ]
    }
    system = ActorSystem.from_config(config, autostart=False)
    remote, cluster = system.executors["remote"], system.executors["local"]
    assert isinstance(remote, DaskExecutor)
    assert remote.address == "tcp://127.0.0.1:8786"
    assert isinstance(cluster, DaskExecutor)
    assert cluster.address is None
    system.shutdown()
    bad = {"executors": [{"name": "d", "type": "dask", "n_wrokers": 2}]}
    with pytest.raises(ConfigError, match=r"executors\[0\]\.n_wrokers.*unknown key"):
        ActorSystem.from_config(bad, autostart=False)
    both = {"executors": [{"type": "dask", "address": "tcp://h:1", "n_workers": 2}]}
    with pytest.raises(ConfigError, match="cluster options"):
        ActorSystem.from_config(both, autostart=False)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="address"):
        DaskExecutor(8786)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="address or client, not both"):
        DaskExecutor("tcp://h:1", client=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cluster options \(n_workers\)"):
        DaskExecutor("tcp://h:1", n_workers=2)
    with pytest.raises(TypeError, match=r"client must be a synchronous distributed\.Client"):
        DaskExecutor(client="tcp://h:1")  # type: ignore[arg-type]


def test_without_distributed_the_import_works_and_the_executor_says_what_to_install() -> None:
    script = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if it were not installed\n"
        "from actors import DaskExecutor, TaskManager\n"
        "try:\n"
        "    DaskExecutor()\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "pip install 'actors-taskmanager[dask]'" in out


# -- a real `dask scheduler` and `dask worker` processes ---------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """`dask scheduler` and `dask worker` subprocesses on 127.0.0.1, stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}  # workers import this module

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def scheduler(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self._start(
            "scheduler",
            "distributed.cli.dask_scheduler",
            *("--host", "127.0.0.1", "--port", port, "--no-dashboard"),
        )

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self._start(
            name,
            "distributed.cli.dask_worker",
            self.address,
            *("--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard"),
            *("--host", "127.0.0.1"),
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    try:
        cluster.scheduler()
        yield cluster
    finally:
        cluster.stop()


def test_a_killed_worker_fails_the_attempt_which_is_retried_on_another(
    dask_cluster: Cluster, make_manager: Callable[..., TaskManager]
) -> None:
    first_worker = dask_cluster.worker("first")
    executor = DaskExecutor(dask_cluster.address, name="dask")
    tm = make_manager(executor)  # the client retries until the scheduler listens
    eventually(lambda: executor.capacity == 1, "the first worker joined")
    assert tm.future(tm.register_task("pid", os.getpid, executor_type="dask")).result(WAIT) == (
        first_worker.pid
    )

    with events_of(tm) as events:
        task_id = tm.register_task(
            "killed",
            report_then_sleep_on_first_attempt,
            executor_type="dask",
            max_retries=1,
            retry_delay=0.0,
        )
        progress = next_event(events, messages.TaskProgress, task_id, WAIT)
        assert progress.message == f"pid {first_worker.pid}"  # attempt 1 runs there
        os.kill(first_worker.pid, signal.SIGKILL)
        first_worker.wait(WAIT)
        retried = next_event(events, messages.TaskRetrying, task_id, WAIT)
        assert "Dask worker" in str(retried.error)
        eventually(lambda: executor.capacity == 0, "the killed worker left")
        second_worker = dask_cluster.worker("second")
        assert tm.future(task_id).result(WAIT) == second_worker.pid
    task = tm.get_task(task_id)
    assert task is not None
    assert task.attempt == 2


def test_in_flight_attempts_fail_retryably_when_the_scheduler_dies_and_rerun_after_restart(
    dask_cluster: Cluster, make_manager: Callable[..., TaskManager]
) -> None:
    first_worker = dask_cluster.worker("first")
    executor = DaskExecutor(dask_cluster.address, name="dask")
    tm = make_manager(executor)
    eventually(lambda: executor.capacity == 1, "the first worker joined")
    with events_of(tm) as events:
        task_id = tm.register_task(
            "held",
            report_then_sleep_on_first_attempt,
            executor_type="dask",
            max_retries=1,
            retry_delay=0.0,
        )
        next_event(events, messages.TaskProgress, task_id, WAIT)  # attempt 1 runs
        scheduler = dask_cluster.processes[0]
        scheduler.kill()
        scheduler.wait(WAIT)
        retried = next_event(events, messages.TaskRetrying, task_id, WAIT)
        assert "lost its scheduler" in str(retried.error)
        # The cluster comes back (a new scheduler at the same address, a new worker);
        # the client reconnects and the retry runs there.
        first_worker.kill()
        first_worker.wait(WAIT)
        dask_cluster.scheduler()
        second_worker = dask_cluster.worker("second")
        assert tm.future(task_id).result(WAIT) == second_worker.pid
    task = tm.get_task(task_id)
    assert task is not None
    assert task.attempt == 2
    # The executor's topics reach the new scheduler too: a timeout still counts from
    # the worker's start (an event on its topic).
    stuck = tm.register_task("stuck", time.sleep, WAIT, executor_type="dask", timeout=0.5)
    with pytest.raises(TaskTimeoutError):
        tm.future(stuck).result(WAIT)


class NeedsTwoError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")


def test_our_errors_keep_their_own_pickling_once_distributed_is_imported() -> None:
    import pickle

    from actors.errors import StandInError

    DaskExecutor(processes=False)  # distributed's import installs tblib's reducers
    try:
        raise NeedsTwoError(404, "gone")
    except NeedsTwoError as raised:
        error = TaskExecutionError("failed", "t", original_error=raised)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy.original_error, StandInError)  # not NeedsTwoError's TypeError
    assert str(copy.original_error).endswith("NeedsTwoError: 404: gone")


def test_error_pickling_is_the_same_whenever_distributed_is_imported() -> None:
    # tblib's reducer (registered by importing distributed, and again by distributed for
    # errors it sends) must not change what a TaskExecutionError pickles to.
    script = (
        "import pickle, sys\n"
        "order = sys.argv[1]\n"
        "if order == 'distributed first':\n"
        "    import distributed\n"
        "from actors import DaskExecutor\n"
        "from actors.errors import TaskExecutionError\n"
        "if order != 'no executor':\n"
        "    DaskExecutor(processes=False)\n"
        "if order == 'tblib again':\n"
        "    import tblib.pickling_support\n"
        "    tblib.pickling_support.install()\n"
        "class NeedsTwo(Exception):\n"
        "    def __init__(self, code, reason):\n"
        "        super().__init__(f'{code}: {reason}')\n"
        "try:\n"
        "    raise NeedsTwo(404, 'gone')\n"
        "except NeedsTwo as raised:\n"
        "    error = TaskExecutionError('failed', 't', original_error=raised)\n"
        "copy = pickle.loads(pickle.dumps(error))\n"
        "print(type(copy.original_error).__name__, type(copy.__cause__).__name__,\n"
        "      str(copy.original_error).split('.')[-1])\n"
    )
    seen = {
        order: subprocess.run(
            [sys.executable, "-c", script, order],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
        for order in ("no executor", "distributed first", "executor first", "tblib again")
    }
    assert set(seen.values()) == {"StandInError StandInError NeedsTwo: 404: gone"}, seen


# -- prefetch ---------------------------------------------------------------------------------


def hold(seconds: float) -> str:
    started.set()
    time.sleep(seconds)  # the work itself: it keeps the one worker thread busy
    return "held"


def test_a_queued_attempts_timeout_counts_from_its_start(
    make_manager: Callable[..., TaskManager],
) -> None:
    # One worker thread, prefetch 2: the second task waits on the cluster while the first
    # runs longer than the second's timeout; it must not time out before it starts.
    tm = make_manager(local(threads_per_worker=1, prefetch=2))
    first = tm.register_task("first", hold, 1.0, executor_type="dask")
    second = tm.register_task("second", add, 1, 2, executor_type="dask", timeout=0.5)
    assert started.wait(WAIT)
    assert tm.get_task_status(second) is TaskStatus.RUNNING  # handed to the cluster already
    assert tm.future(first).result(WAIT) == "held"
    assert tm.future(second).result(WAIT) == 3
    # And one that runs too long still times out, counted from its start.
    stuck = tm.register_task("stuck", block_until_released, executor_type="dask", timeout=0.3)
    with pytest.raises(TaskTimeoutError, match=r"timed out after 0\.3s"):
        tm.future(stuck).result(WAIT)


def test_bad_dask_prefetch_is_refused() -> None:
    with pytest.raises(ValueError, match="prefetch must be an integer from 0 to 1000"):
        DaskExecutor(prefetch=-1)
