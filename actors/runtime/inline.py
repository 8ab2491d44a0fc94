"""A dispatcher that runs an actor's slices on the thread that sends it a message, when allowed.

The scheduler actor is hosted this way, so a pool thread that finished an attempt runs the
scheduler's slice without a thread switch. Slices never overlap and messages keep their
order; a sender that may not host (``host()`` is None) hands the slice to the actor's own
thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from actors.runtime.hosted import Dispatcher, ThreadPoolDispatcher
from actors.runtime.sync import run_now
from supervision import Cancellable

__all__ = ["InlineDispatcher"]


Host = Callable[[Callable[[], None]], None]
"""How a calling thread hosts a callable: run it now, or ``loop.call_soon`` on a loop."""


class InlineDispatcher(Dispatcher):
    """Runs callables on the calling thread when ``host()`` offers a way to, else on a
    thread of its own (started on first need).

    Args:
        host: asked on the calling thread; how this thread can run the callable (at once,
            or later in its event loop), or None. A thread that offers one is the
            library's, holds no lock, runs no code that could be interrupted, and is
            free for the work (a later callback on a loop only if nothing but the
            library's own work can block that loop first).
        name: the name of the dispatcher and of its own thread.
        rescue: ``rescue(callback)`` calls ``callback`` a little later on another thread
            (the timer's), and returns what cancels that. A callable a loop was asked to
            run later, and has not run by then (a coroutine of the application's blocked
            its loop), is run on our own thread instead: a loop only ever lends itself
            (test_a_blocked_library_loop_does_not_stop_sync_tasks).
    """

    def __init__(
        self,
        host: Callable[[], Host | None],
        name: str = "inline",
        *,
        rescue: Callable[[Callable[[], None]], Cancellable] | None = None,
    ) -> None:
        self.name = name
        self._host = host
        self._rescue = rescue
        self._running = threading.local()
        self._lock = threading.Lock()
        self._own: ThreadPoolDispatcher | None = None
        self._closed = False

    @property
    def capacity(self) -> int:
        return 1

    def execute(self, run: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError(f"dispatcher {self.name} is shut down")
        running = self._running
        host = None if getattr(running, "active", False) else self._host()
        if host is None:
            self._thread().execute(run)  # never nested on one thread, never where not offered
            return
        if host is run_now:  # the hot path (a pool thread that finished an attempt)
            running.active = True  # (what _run_here does, without the call)
            try:
                run()
            finally:
                running.active = False
        elif self._rescue is None:
            host(functools.partial(self._run_here, run))
        else:
            self._lend(host, run, self._rescue)

    def _lend(
        self,
        host: Host,
        run: Callable[[], None],
        rescue: Callable[[Callable[[], None]], Cancellable],
    ) -> None:
        """Have ``host`` (a loop) run ``run`` later, unless it has not by the time the
        rescue comes: then our own thread runs it. Whoever pops the claim runs it."""
        claim = [run]

        def on_the_loop() -> None:
            rescuing.cancel()
            try:
                taken = claim.pop()
            except IndexError:
                return  # rescued: our own thread ran it
            self._run_here(taken)

        def rescued() -> None:  # on the timer's thread: the loop has not got to it
            try:
                taken = claim.pop()
            except IndexError:
                return
            self._thread().execute(taken)

        rescuing = rescue(rescued)
        host(on_the_loop)

    def _run_here(self, run: Callable[[], None]) -> None:
        """Run ``run`` on this thread; what it schedules on us meanwhile goes to our own
        thread (never nested on one thread)."""
        running = self._running
        running.active = True
        try:
            run()
        finally:
            running.active = False

    def _thread(self) -> ThreadPoolDispatcher:
        own = self._own
        if own is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"dispatcher {self.name} is shut down")
                if self._own is None:
                    self._own = ThreadPoolDispatcher(1, name=self.name)
                own = self._own
        return own

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            own, self._own = self._own, None
        if own is not None:
            own.shutdown(wait=wait)

    def __repr__(self) -> str:
        return f"InlineDispatcher(name={self.name!r})"
