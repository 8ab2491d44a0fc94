"""No lock is held while waiting for another thread, an actor or the disk.

Each test holds one such wait open for real (an executor actor whose backend is still
opening, a journal commit still being written) and shows that the lock its path used
to hold is free meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from actors import (
    ActorSystem,
    Executor,
    TaskExecutionError,
    TaskManager,
    ThreadPoolDispatcher,
)
from actors.durability.journal import Journal

from .conftest import WAIT

RAN = threading.Event()


def mark_ran() -> None:  # a journaled task's function: importable by its name
    RAN.set()


class SlowToOpen(Executor):
    """An executor whose backend takes until ``proceed`` is set to open (or fails)."""

    kind = "slow_to_open"

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__("slow")
        self.opening = threading.Event()
        self.proceed = threading.Event()
        self.fail = fail

    @property
    def capacity(self) -> int:
        return 1

    def create_dispatcher(self) -> ThreadPoolDispatcher:
        return ThreadPoolDispatcher(1, name="slow-worker")

    def open(self) -> None:
        self.opening.set()
        assert self.proceed.wait(WAIT)
        if self.fail:
            raise OSError("the backend is unreachable")
        super().open()


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_no_lock_is_held_while_an_executor_starts() -> None:
    # The system's lock used to be held across the ask that starts the executor's actor;
    # the root supervisor's escalation needs that lock (it waited 60 s).
    with ActorSystem() as system:
        tm = system.task_manager
        tm.start_sync()
        slow = SlowToOpen()
        thread, errors = in_thread(lambda: system.add_executor(slow))
        try:
            assert slow.opening.wait(WAIT)
            assert system._lock.acquire(timeout=WAIT), "the system's lock is held"
            system._lock.release()
            # Work on other executors goes on meanwhile.
            quick = tm.register_task("quick", abs, -3)
            assert tm.future(quick).result(timeout=WAIT) == 3
        finally:
            slow.proceed.set()
            thread.join(WAIT)
        assert errors == []
        task_id = tm.register_task("slow", abs, -4, executor_type="slow")
        assert tm.future(task_id).result(timeout=WAIT) == 4


def test_an_executor_that_fails_to_start_fails_its_tasks() -> None:
    with ActorSystem() as system:
        tm = system.task_manager
        tm.start_sync()
        broken = SlowToOpen(fail=True)
        thread, errors = in_thread(lambda: system.add_executor(broken))
        try:
            assert broken.opening.wait(WAIT)
            # Registered while the executor's actor starts: the task waits for it.
            stranded = tm.register_task("stranded", abs, -1, executor_type=broken)
        finally:
            broken.proceed.set()
            thread.join(WAIT)
        assert errors
        assert "the backend is unreachable" in str(errors[0])
        error = tm.future(stranded).exception(timeout=WAIT)
        assert isinstance(error, TaskExecutionError)
        assert "executor 'slow' failed to start" in str(error)
        assert "slow" not in system.executors
        # The name is free again: a working executor can take it.
        working = SlowToOpen()
        working.proceed.set()
        system.add_executor(working)
        assert (
            tm.future(tm.register_task("after", abs, -2, executor_type="slow")).result(timeout=WAIT)
            == 2
        )


@pytest.fixture
def held_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[int]]]:
    """The journal's next commit waits until the event is set; every commit's size is
    noted (the real SQLite write happens, only later)."""
    release = threading.Event()
    sizes: list[int] = []
    write = Journal._write_queued

    def held(self: Journal, limit: int | None = None, **options: Any) -> None:
        if not self._changes.empty():
            assert release.wait(WAIT)
            sizes.append(len(self._changes._items))
        write(self, limit, **options)

    monkeypatch.setattr(Journal, "_write_queued", held)
    yield release, sizes
    release.set()


@pytest.fixture
def registered() -> Iterator[Callable[[str], threading.Event]]:
    """An event per task id, set when the library logs its registration."""
    events: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def event_for(task_id: str) -> threading.Event:
        with lock:
            return events.setdefault(task_id, threading.Event())

    def note(_logger: Any, _method: str, event: dict[str, Any]) -> Any:
        if event["event"] == "task.registered":
            event_for(event["task_id"]).set()
        raise structlog.DropEvent

    structlog.configure(processors=[note])
    yield event_for
    structlog.reset_defaults()


def test_registrations_wait_for_one_commit_together(
    tmp_path: Path,
    held_commit: tuple[threading.Event, list[int]],
    registered: Callable[[str], threading.Event],
) -> None:
    # The manager's lock used to be held across the commit: a second thread could not
    # even add its task until the first thread's commit was done.
    release, _sizes = held_commit
    with TaskManager(journal=tmp_path / "tasks.sqlite") as tm:
        first, _ = in_thread(lambda: tm.register_task("a", abs, -1, task_id="a"))
        assert registered("a").wait(WAIT)
        second, _ = in_thread(lambda: tm.register_task("b", abs, -2, task_id="b"))
        assert registered("b").wait(WAIT), "the second registration waits for a lock"
        release.set()
        first.join(WAIT)
        second.join(WAIT)
        assert tm.future("b").result(timeout=WAIT) == 2


def test_coroutines_await_their_commit_without_blocking_the_loop_and_share_it(
    tmp_path: Path, held_commit: tuple[threading.Event, list[int]]
) -> None:
    release, sizes = held_commit

    async def main() -> list[Any]:
        async with TaskManager(journal=tmp_path / "tasks.sqlite") as tm:
            registering = asyncio.gather(
                *(tm.register_task_async("t", abs, -n) for n in range(200))
            )
            # The commit is held, yet the loop runs on: the registrations are awaited.
            await asyncio.sleep(0)
            assert not registering.done()
            release.set()
            ids = await asyncio.wait_for(registering, WAIT)
            return [await tm.execute_task(task_id) for task_id in ids]

    assert asyncio.run(main()) == list(range(200))
    assert sum(sizes[:2]) >= 200  # the 200 rows went in at most two commits


def test_a_task_registered_from_a_coroutine_runs_only_once_committed(
    tmp_path: Path, held_commit: tuple[threading.Event, list[int]]
) -> None:
    release, _sizes = held_commit
    RAN.clear()

    async def main() -> None:
        async with TaskManager(journal=tmp_path / "tasks.sqlite") as tm:
            registering = asyncio.ensure_future(tm.register_task_async("t", mark_ran))
            await asyncio.sleep(0)
            # Its commit is held: the task is registered, but the scheduler has not
            # been told of it (a crash now would lose a task that must not have run).
            task = tm.get_all_tasks()[0]
            assert task.status.name == "PENDING"
            assert not registering.done()
            release.set()
            await tm.execute_task(await registering)

    asyncio.run(main())
    assert RAN.is_set()
