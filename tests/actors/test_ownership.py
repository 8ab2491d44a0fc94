"""One owner per piece of state, one lock order, and Executor as a public extension point."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest
import structlog

from actors import (
    ActorSystem,
    Executor,
    TaskExecutionError,
    TaskManager,
    TaskTimeoutError,
    ThreadPoolDispatcher,
)
from supervision import Backoff

from .conftest import WAIT


class _WatchedLock:
    """The store's lock, noting which thread holds it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.holder: int | None = None

    def acquire(self) -> None:
        self.inner.acquire()
        self.holder = threading.get_ident()

    def release(self) -> None:
        self.holder = None
        self.inner.release()

    def locked(self) -> bool:
        return bool(self.inner.locked())

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def test_nothing_is_told_or_logged_while_the_store_is_locked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store's lock is the innermost lock: a path that told an actor (a mailbox
    # lock, maybe a scheduler slice run inline) or logged (user processors) while holding
    # it could wait for something that waits for the store; nor is a retry policy
    # (tenacity's) called under it.
    system = ActorSystem(max_concurrent_tasks=4, autostart=False)
    lock = _WatchedLock(system.store._lock)
    system.store._lock = lock  # type: ignore[assignment]
    violations: list[str] = []
    tell = pykka.ActorRef.tell

    def checked_tell(self: pykka.ActorRef[Any], message: Any) -> None:
        if lock.holder == threading.get_ident():
            violations.append(f"tell {type(message).__name__}")
        tell(self, message)

    def checked_log(_logger: Any, _method: str, event: dict[str, Any]) -> Any:
        if lock.holder == threading.get_ident():
            violations.append(f"log {event['event']}")
        raise structlog.DropEvent

    delay = Backoff.delay

    def checked_delay(self: Backoff, retry: int) -> float:  # tenacity's timing: not ours
        if lock.holder == threading.get_ident():
            violations.append("retry delay")
        return delay(self, retry)

    monkeypatch.setattr(pykka.ActorRef, "tell", checked_tell)
    monkeypatch.setattr(Backoff, "delay", checked_delay)
    structlog.configure(processors=[checked_log])
    tm = TaskManager(system=system)
    try:
        gate = threading.Event()
        root = tm.register_task("root", gate.wait, WAIT)
        ids = [tm.register_task(f"t{n}", abs, -n, dependencies=[root]) for n in range(50)]
        flaky = tm.register_task("flaky", int, "x", max_retries=1, retry_delay=0)
        hold = threading.Event()
        slow = tm.register_task("slow", hold.wait, WAIT, timeout=0.05)
        tm.start_sync()
        doomed = tm.register_task("doomed", gate.wait, WAIT)
        tm.cancel_task_sync(doomed)
        gate.set()
        for task_id in [root, *ids]:
            tm.future(task_id).result(timeout=WAIT)
        with pytest.raises(TaskExecutionError):
            tm.future(flaky).result(timeout=WAIT)
        with pytest.raises(TaskTimeoutError):
            tm.future(slow).result(timeout=WAIT)
        hold.set()
    finally:
        tm.stop_sync(timeout=WAIT)
        system.shutdown()
        structlog.reset_defaults()
    assert violations == []


class NamedThreads(Executor):
    """A user's executor, written with public names only."""

    kind = "named_threads"

    def __init__(self, workers: int, *, name: str | None = None) -> None:
        super().__init__(name)
        self.workers = workers
        self.opened = threading.Event()

    @property
    def capacity(self) -> int:
        return self.workers

    def create_dispatcher(self) -> ThreadPoolDispatcher:
        return ThreadPoolDispatcher(self.workers, name=f"{self.name}-thread")

    def open(self) -> None:
        super().open()
        self.opened.set()


def test_a_users_executor_runs_tasks_with_public_names_only() -> None:
    executor = NamedThreads(2, name="mine")
    together = threading.Barrier(2, timeout=WAIT)

    def where() -> str:
        together.wait()  # both slots of its capacity at once
        return threading.current_thread().name

    with TaskManager(max_concurrent_tasks=4) as tm:
        ids = [tm.register_task(f"w{n}", where, executor_type=executor) for n in range(2)]
        names = [tm.future(t).result(timeout=WAIT) for t in ids]
        assert executor.opened.is_set()  # its executor actor opened it
        assert all(name.startswith("mine-thread") for name in names)
        assert tm.get_metrics()["executors"]["mine"]["type"] == "named_threads"
        assert tm.get_metrics()["executors"]["mine"]["capacity"] == 2
    assert executor.closed  # its executor actor closed it when the system stopped
