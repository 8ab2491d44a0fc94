"""The synchronisation tricks the task path relies on (their measurements: docs/performance.md).

Everything else in the package is plain: one owner per piece of state, messages between
owners. These exist because CPython's GIL turns an ordinary waiting lock, or an ordinary
thread hand-off, into a context switch per task.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Burst", "YieldingLock", "handoff", "run_now"]

T = TypeVar("T")


class YieldingLock:
    """A mutex whose waiter first gives the GIL away a few times, then sleeps.

    The task store's lock is taken by every pool thread a few times per attempt, and by
    callers asking for futures, and held for microseconds by a thread that has the GIL.
    A waiter that sleeps in the kernel at once is woken owning the lock but not the GIL;
    the GIL's holder then needs the lock and sleeps too, and the threads fall into a
    convoy of a context switch or more per attempt. Yielding (``time.sleep(0)`` lets
    the holder run) usually finds the lock free again; a waiter that still finds it
    taken sleeps on it as usual.
    """

    __slots__ = ("_lock",)

    _YIELDS = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> None:
        try_acquire = self._lock.acquire
        if try_acquire(False):
            return
        for _ in range(self._YIELDS):
            time.sleep(0)
            if try_acquire(False):
                return
        try_acquire()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> None:
        if not self._lock.acquire(False):  # the common case, uncontended: one call
            self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def run_now(run: Callable[[], None]) -> None:
    """Host a slice by running it at once, on the calling thread."""
    run()


class _Handoff(threading.local):
    """Per thread: whether this thread is about to be free, and how it can host a slice.

    A task actor that has finished its attempt sets ``free`` and ``host`` while it tells
    the scheduler so. The scheduler's slice is then hosted on this thread: at once on a
    pool thread (``run_now``), at the end of the loop's current callbacks on a loop
    thread of the library's own (``loop.call_soon``: the completions of one loop
    iteration are one slice); never on the application's loop, which may block before
    the callback runs (its completions go to the scheduler's own thread).
    The first attempt the scheduler launches may take this thread once the task actor's
    slice returns (``Dispatcher.execute_next``) instead of waking another thread.
    Any other caller of the scheduler (a registration, a timer) leaves both unset: its
    thread is not free, and the scheduler's own thread runs the slice.
    """

    free = False
    host: Callable[[Callable[[], None]], None] | None = None

    def take(self) -> bool:
        """True once per offer: the caller may run one attempt next on this thread."""
        free, self.free = self.free, False
        return free


handoff = _Handoff()


class Burst(Generic[T]):
    """Items that many threads post and one consumer takes, with one wake-up per burst.

    ``put`` returns True only to the poster that must wake the consumer (no wake-up is on
    its way); ``take`` empties it. No lock on the common path: every thread that finishes
    an attempt posts, and a lock they all take falls into a convoy under the GIL (the
    woken waiter owns the lock but not the GIL). ``deque.append`` and ``popleft`` are
    atomic; ``take`` clears the pending flag *before* it empties the queue, so an item
    appended after the emptying finds the flag clear and wakes the consumer again (at
    worst one wake-up too many, which finds nothing).
    """

    __slots__ = ("_items", "_lock", "_pending")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._lock = threading.Lock()  # only to decide which poster wakes the consumer
        self._pending = False

    def put(self, item: T) -> bool:
        """Add ``item``; True if the caller must now wake the consumer."""
        self._items.append(item)
        if self._pending:  # claim_wake's body, inline: this is every notice's path
            return False  # a wake-up is on its way: its take gets this item too
        with self._lock:
            first, self._pending = not self._pending, True
        return first

    def add(self, item: T) -> None:
        """Add ``item`` without deciding the wake-up (``put``'s first half): for a poster
        that holds a lock under which it must not wake anyone. It calls
        :meth:`claim_wake` once the lock is released."""
        self._items.append(item)

    def claim_wake(self) -> bool:
        """After :meth:`add`: True if the caller must now wake the consumer."""
        if self._pending:
            return False  # a wake-up is on its way: its take gets this item too
        with self._lock:
            first, self._pending = not self._pending, True
        return first

    def empty(self) -> bool:
        return not self._items

    def wake_failed(self) -> None:
        """The wake-up could not be delivered: the next put tries again."""
        self._pending = False

    def take(self) -> list[T]:
        """Every item, oldest first (called by the consumer, once woken)."""
        self._pending = False
        items: list[T] = []
        popleft = self._items.popleft
        try:
            while True:
                items.append(popleft())
        except IndexError:
            return items

    def take_some(self, limit: int) -> list[T]:
        """Up to ``limit`` items, oldest first. The consumer must look again (``empty``)
        after: the posters of the items left have not woken it."""
        self._pending = False
        items: list[T] = []
        popleft = self._items.popleft
        try:
            for _ in range(limit):
                items.append(popleft())
        except IndexError:
            pass
        return items

    def clear(self) -> None:
        self._items.clear()
