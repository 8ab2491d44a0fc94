"""Fixtures for the whole suite: every test must leave no actor and no thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import structlog

# How long a test's leftover threads get to finish after the test returns. Threads of
# stopped actors and an idle timer exit on their own; this only absorbs that last step.
THREAD_EXIT_GRACE = 5.0

# Threads that exist once per process by design, started on first use and never stopped:
# distributed's offload executor (``distributed.utils._offload_executor``, one thread for
# every client and cluster of the process). Everything else Dask starts (a client's event
# loop, a LocalCluster's worker threads) must be gone after its executor shuts down.
PROCESS_WIDE_THREADS = ("Dask-Offload",)


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    actors = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(block=True, timeout=THREAD_EXIT_GRACE)
    deadline = time.monotonic() + THREAD_EXIT_GRACE
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith(PROCESS_WIDE_THREADS):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    threads = [
        t.name
        for t in set(threading.enumerate()) - before
        if t.is_alive() and not t.name.startswith(PROCESS_WIDE_THREADS)
    ]
    assert not actors, f"test left actors running: {actors}"
    assert not threads, f"test left threads running: {threads}"


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Turn the library's structlog events on and collect them (as dicts) in a list."""
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def collect(_logger: Any, method: str, event_dict: dict[str, Any]) -> Any:
        with lock:
            events.append({**event_dict, "level": method})
        raise structlog.DropEvent

    structlog.configure(processors=[collect])
    try:
        yield events
    finally:
        structlog.reset_defaults()
