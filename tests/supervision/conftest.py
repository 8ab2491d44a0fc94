"""Actors and fixtures shared by the supervision tests: plain pykka actors, no mixin."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from supervision import Cancellable, Terminated, watch

WAIT = 5.0  # every wait in these tests has this limit


class Journal:
    """A thread-safe record of what actors did, in order, that tests wait on."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, ...]] = queue.Queue()
        self.entries: list[tuple[str, ...]] = []

    def put(self, *entry: str) -> None:
        self._queue.put(entry)

    def next(self, count: int = 1) -> list[tuple[str, ...]]:
        """The next ``count`` entries, waiting up to WAIT seconds for each."""
        got = [self._queue.get(timeout=WAIT) for _ in range(count)]
        self.entries.extend(got)
        return got

    def empty(self) -> bool:
        return self._queue.empty()


class Worker(pykka.ThreadingActor):
    """A plain ThreadingActor: records its life; ``crash`` (told) fails it."""

    def __init__(self, journal: Journal, name: str) -> None:
        super().__init__()
        self.journal = journal
        self.name = name

    def on_start(self) -> None:
        self.journal.put("start", self.name)

    def on_stop(self) -> None:
        self.journal.put("stop", self.name)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if message == "exit":
            self.stop()
            return None
        if message == "ask-error":
            raise ValueError("bad question")
        return (self.name, message)


class FailingStart(pykka.ThreadingActor):
    def __init__(self, journal: Journal, name: str) -> None:
        super().__init__()
        self.journal = journal
        self.name = name

    def on_start(self) -> None:
        self.journal.put("start-failed", self.name)
        raise RuntimeError(f"{self.name} cannot start")


class FakeTimer:
    """A Timer whose delays a test fires by hand; records every delay asked for."""

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> bool:
            was, self.cancelled = not self.cancelled, True
            return was

    def __init__(self) -> None:
        self.scheduled: queue.Queue[tuple[pykka.ActorRef[Any], Any, float, FakeTimer.Handle]]
        self.scheduled = queue.Queue()

    def send_after(self, ref: pykka.ActorRef[Any], message: Any, delay: float) -> Cancellable:
        handle = FakeTimer.Handle()
        self.scheduled.put((ref, message, delay, handle))
        return handle

    def next_delay(self) -> tuple[float, Any]:
        """Wait for the next scheduled delay; return it and a function that fires it."""
        ref, message, delay, handle = self.scheduled.get(timeout=WAIT)

        def fire() -> None:
            if not handle.cancelled:
                ref.tell(message)

        return delay, fire


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def stop_after() -> Iterator[list[pykka.ActorRef[Any]]]:
    """Refs appended here are stopped after the test, even if it fails."""
    refs: list[pykka.ActorRef[Any]] = []
    yield refs
    for ref in reversed(refs):
        ref.stop()


class Watcher(pykka.ThreadingActor):
    """Puts every message it is told (Terminated records) into a queue."""

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> None:
        self.inbox.put(message)


def wait_exit(ref: pykka.ActorRef[Any]) -> Terminated:
    """Wait until ``ref`` has stopped and its supervisor has been told (watchers come after)."""
    inbox: queue.Queue[Terminated] = queue.Queue()
    watcher = Watcher.start(inbox)
    try:
        watch(ref, watcher)
        return inbox.get(timeout=WAIT)
    finally:
        watcher.stop()
