"""Waiting for tasks from asyncio: outcomes delivered to a loop in batches, not one wake-up each.

A :class:`LoopWaker` collects the outcomes for its loop and wakes it once per burst; an
outcome that arrives on the loop's own thread is delivered at once.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

from actors.core.store import TaskStore
from actors.runtime.sync import Burst

__all__ = ["LoopWaker", "waker_for"]


class LoopWaker:
    """Delivers tasks' outcomes into asyncio futures of one loop.

    Made on the loop's thread (``waker_for`` is called from a coroutine).
    """

    __slots__ = ("_loop", "_ready", "_thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the wakers are kept in a WeakKeyDictionary keyed by their loop.
        self._loop = weakref.ref(loop)
        self._thread = threading.get_ident()
        self._ready: Burst[tuple[asyncio.Future[Any], Any, BaseException | None]] = Burst()

    def watch(self, store: TaskStore, task_id: str) -> asyncio.Future[Any]:
        """An asyncio future of this loop that gets the task's result or error.

        Cancelling it (its awaiter was cancelled) leaves the task alone. Raises
        TaskNotFoundError for an unknown (or forgotten) task.
        """
        loop = self._loop()
        assert loop is not None  # we are called on it
        waiter: asyncio.Future[Any] = loop.create_future()
        store.when_done(task_id, functools.partial(self._deliver, waiter))
        return waiter

    def future(self) -> tuple[asyncio.Future[Any], Callable[[Any, BaseException | None], None]]:
        """An asyncio future of this loop, and how to settle it from any thread
        (``settle(result, error)``), in this loop's batches."""
        loop = self._loop()
        assert loop is not None  # we are called on it
        waiter: asyncio.Future[Any] = loop.create_future()
        return waiter, functools.partial(self._deliver, waiter)

    def _deliver(
        self, waiter: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        # Runs on the thread that ended the task.
        if threading.get_ident() == self._thread:
            _settle(waiter, result, error)
            return
        if not self._ready.put((waiter, result, error)):
            return  # a wake-up is on its way
        loop = self._loop()
        try:
            if loop is None:
                raise RuntimeError("the loop is gone")
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody waits any more
            self._ready.wake_failed()
            self._ready.clear()

    def _drain(self) -> None:
        for item in self._ready.take():
            _settle(*item)


def _settle(waiter: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if waiter.done():  # its awaiter was cancelled
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWaker] = (
    weakref.WeakKeyDictionary()
)
_wakers_lock = threading.Lock()


def waker_for(loop: asyncio.AbstractEventLoop) -> LoopWaker:
    """The waker of ``loop`` (call it on the loop's thread)."""
    waker = _wakers.get(loop)
    if waker is None:
        with _wakers_lock:
            waker = _wakers.get(loop)
            if waker is None:
                waker = _wakers[loop] = LoopWaker(loop)
    return waker
