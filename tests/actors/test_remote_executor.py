"""An executor of one's own whose attempts run elsewhere: the public ``submit`` contract.

The package's own remote executors tell an attempt's end to its task actor directly; an
executor that only implements ``submit`` (a ``concurrent.futures.Future``) goes through
the default adapter, tested here with a real backend (a thread pool standing in for the
remote side) and futures the test settles itself.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from actors import (
    ActorSystem,
    Executor,
    TaskExecutionError,
    TaskManager,
    TaskTimeoutError,
)
from actors.core.call import Call, ProgressSink, run_call
from actors.runtime.hosted import Dispatcher, ThreadPoolDispatcher

WAIT = 10.0


class Elsewhere(Executor):
    """Runs each call on a pool of its own, or hands back a future the test settles."""

    kind = "elsewhere"
    runs_elsewhere = True

    def __init__(self, *, hold: bool = False) -> None:
        super().__init__("elsewhere")
        self.hold = hold
        self.held: list[concurrent.futures.Future[Any]] = []
        self.handed = threading.Semaphore(0)
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="elsewhere")

    @property
    def capacity(self) -> int:
        return 2

    def create_dispatcher(self) -> Dispatcher:
        return ThreadPoolDispatcher(1, name="elsewhere-worker")

    def submit(self, call: Call, report: ProgressSink) -> concurrent.futures.Future[Any]:
        if self.hold:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self.held.append(future)
            self.handed.release()
            return future
        return self.pool.submit(run_call, call, lambda fraction, message: None)

    def close(self, *, wait: bool = True) -> None:
        super().close(wait=wait)
        self.pool.shutdown(wait=True)


def boom() -> None:
    raise ValueError("boom")


@pytest.fixture
def make() -> Any:
    managers: list[TaskManager] = []

    def start(executor: Elsewhere) -> TaskManager:
        tm = TaskManager(system=ActorSystem(executors=[executor]))
        tm.start_sync()
        managers.append(tm)
        return tm

    yield start
    for tm in managers:
        tm.stop_sync(timeout=WAIT)
        tm.system.shutdown()


def test_results_and_errors_come_back_through_submits_future(
    make: Callable[[Elsewhere], TaskManager],
) -> None:
    tm = make(Elsewhere())
    ok = tm.register_task("add", sum, [1, 2, 3], executor_type="elsewhere")
    bad = tm.register_task("boom", boom, executor_type="elsewhere")
    assert tm.future(ok).result(WAIT) == 6
    with pytest.raises(TaskExecutionError, match="ValueError: boom"):
        tm.future(bad).result(WAIT)


def test_a_timeout_cancels_submits_future(make: Callable[[Elsewhere], TaskManager]) -> None:
    executor = Elsewhere(hold=True)
    tm = make(executor)
    task_id = tm.register_task("stuck", sum, [1], executor_type="elsewhere", timeout=0.2)
    with pytest.raises(TaskTimeoutError):
        tm.future(task_id).result(WAIT)
    assert executor.handed.acquire(timeout=WAIT)
    held = executor.held[0]
    assert held.cancelled()  # the attempt let go of the work


def test_a_future_the_backend_cancels_fails_its_attempt_under_the_retry_policy(
    make: Callable[[Elsewhere], TaskManager],
) -> None:
    # Only the manager's own let-go (a timeout, a cancel) interrupts an attempt: work
    # the backend gave up is a failure, as a lost connection is.
    executor = Elsewhere(hold=True)
    tm = make(executor)
    task_id = tm.register_task(
        "dropped", sum, [1], executor_type="elsewhere", max_retries=1, retry_delay=0.0
    )
    for attempt in (1, 2):
        assert executor.handed.acquire(timeout=WAIT)
        assert executor.held[attempt - 1].cancel()  # the backend gave the work up
    with pytest.raises(TaskExecutionError, match="executor 'elsewhere' cancelled its work"):
        tm.future(task_id).result(WAIT)
    task = tm.get_task(task_id)
    assert task is not None
    assert task.attempt == 2
