"""Fixtures for the task system's tests: a manager that is always stopped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pykka
import pytest

from actors import TaskManager, messages
from tests.store_check import counts_kept_right  # noqa: F401 - autouse: every test checks

WAIT = 5.0  # every wait in these tests has this limit

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a fresh event loop."""
    return asyncio.run(asyncio.wait_for(coroutine, WAIT * 4))


class Collector(pykka.ThreadingActor):
    """An event subscriber: puts every message it is told into a queue."""

    def __init__(self, events: queue.Queue[Any]) -> None:
        super().__init__()
        self.events = events

    def on_receive(self, message: Any) -> None:
        self.events.put(message)


def next_event(events: queue.Queue[Any], kind: type, task_id: str, wait: float = WAIT) -> Any:
    """The next event of ``kind`` about ``task_id`` a Collector put in ``events``."""
    deadline = time.monotonic() + wait
    while True:
        event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, kind) and event.task_id == task_id:
            return event


@contextlib.contextmanager
def events_of(tm: TaskManager) -> Iterator[queue.Queue[Any]]:
    """Every task event of ``tm``'s system, put in a queue by a subscribed Collector
    while the block runs."""
    events: queue.Queue[Any] = queue.Queue()
    subscriber = Collector.start(events)
    try:
        tm.system.scheduler.ask(messages.Subscribe(subscriber), timeout=WAIT)
        yield events
    finally:
        subscriber.stop()


class Gate:
    """Holds tasks until the test opens it; records who entered, in order."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered: list[str] = []
        self._lock = threading.Lock()
        self.arrived = threading.Semaphore(0)

    def open(self) -> None:
        self.opened.set()

    def hold(self, name: str = "") -> str:
        with self._lock:
            self.entered.append(name)
        self.arrived.release()
        assert self.opened.wait(WAIT), "the gate was never opened"
        return name

    def wait_arrivals(self, count: int) -> None:
        for _ in range(count):
            assert self.arrived.acquire(timeout=WAIT), "a task never arrived at the gate"


@pytest.fixture
def make_manager() -> Iterator[Callable[..., TaskManager]]:
    managers: list[TaskManager] = []

    def make(**options: Any) -> TaskManager:
        manager = TaskManager(**options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.stop_sync(timeout=WAIT)


@pytest.fixture
def tm(make_manager: Callable[..., TaskManager]) -> TaskManager:
    return make_manager(max_concurrent_tasks=4)


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open()  # never leave a task blocked
