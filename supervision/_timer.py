"""One timer thread for the whole process: delayed messages and callbacks, cancellable."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from supervision._log import get_logger

__all__ = [
    "Cancellable",
    "Timer",
    "TimerHandle",
    "TimerService",
    "send_after",
    "timer_service",
]

_log = get_logger("supervision.timer")

_PENDING, _FIRED, _CANCELLED = 0, 1, 2

# Rebuild the heap once cancelled entries outnumber live ones by this much, so that
# many short-lived timeouts (set, then cancelled when the work finishes) keep the heap small.
_COMPACT_AT = 1024


class Cancellable(Protocol):
    """What ``send_after`` returns: something that can be cancelled."""

    def cancel(self) -> bool: ...


class Timer(Protocol):
    """What a supervisor needs from a timer; inject a fake one in tests."""

    def send_after(self, ref: pykka.ActorRef[Any], message: Any, delay: float) -> Cancellable: ...


class TimerHandle:
    """A scheduled callback. ``cancel()`` returns True if it had not fired yet."""

    __slots__ = ("_callback", "_service", "_state", "deadline", "seq")

    def __init__(
        self, service: TimerService, deadline: float, seq: int, callback: Callable[[], Any]
    ) -> None:
        self._service = service
        self._callback: Callable[[], Any] | None = callback
        self._state = _PENDING
        self.deadline = deadline
        self.seq = seq

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    @property
    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    @property
    def fired(self) -> bool:
        return self._state == _FIRED

    def cancel(self) -> bool:
        """Cancel the timer. Returns True if this call stopped it from firing."""
        return self._service._cancel(self)

    def __repr__(self) -> str:
        state = ("pending", "fired", "cancelled")[self._state]
        return f"<TimerHandle {state} deadline={self.deadline:.6f}>"


class TimerService:
    """Runs callbacks after a delay, all on one daemon thread.

    The thread starts when the first timer is set and exits once no timer is pending,
    so an idle process has no timer thread at all. Callbacks run on that thread and
    must return quickly (telling an actor is the intended use); an exception in one is
    logged and does not stop the others.
    """

    def __init__(self, name: str = "supervision-timer") -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[TimerHandle] = []
        self._live = 0
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], Any]) -> TimerHandle:
        """Call ``callback()`` on the timer thread after ``delay`` seconds."""
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise TypeError(f"delay must be a number of seconds, not {type(delay).__name__}")
        if delay < 0 or math.isnan(delay):
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        with self._cond:
            handle = TimerHandle(self, time.monotonic() + delay, next(self._seq), callback)
            heapq.heappush(self._heap, handle)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0] is handle:
                self._cond.notify()
        return handle

    def send_after(self, ref: pykka.ActorRef[Any], message: Any, delay: float) -> TimerHandle:
        """Tell ``message`` to ``ref`` after ``delay`` seconds; a dead actor is skipped."""

        def deliver() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                _log.debug("timer.target_dead", target=str(ref), message=repr(message))

        return self.call_later(delay, deliver)

    @property
    def pending(self) -> int:
        """How many timers are set and have neither fired nor been cancelled."""
        with self._cond:
            return self._live

    def _cancel(self, handle: TimerHandle) -> bool:
        with self._cond:
            if handle._state != _PENDING:
                return False
            handle._state = _CANCELLED
            handle._callback = None
            self._live -= 1
            if self._live == 0:
                self._heap.clear()
                self._cond.notify()
            elif len(self._heap) > _COMPACT_AT and len(self._heap) > 2 * self._live:
                self._heap = [h for h in self._heap if h._state == _PENDING]
                heapq.heapify(self._heap)
            return True

    def _run(self) -> None:
        """The timer thread: pop due handles in deadline order, exit when none is pending."""
        while True:
            with self._cond:
                while True:
                    if self._live == 0:
                        self._heap.clear()
                        self._thread = None
                        return
                    head = self._heap[0]
                    if head._state != _PENDING:
                        heapq.heappop(self._heap)
                        continue
                    remaining = head.deadline - time.monotonic()
                    if remaining <= 0:
                        heapq.heappop(self._heap)
                        head._state = _FIRED
                        self._live -= 1
                        callback, head._callback = head._callback, None
                        break
                    self._cond.wait(remaining)
            try:
                assert callback is not None
                callback()
            except Exception as error:  # noqa: BLE001 - one bad callback must not stop the others
                _log.error("timer.callback_failed", error=repr(error))


_SERVICE = TimerService()


def timer_service() -> TimerService:
    """The process-wide timer service (one thread for every timer, started on demand)."""
    return _SERVICE


def send_after(ref: pykka.ActorRef[Any], message: Any, delay: float) -> TimerHandle:
    """Tell ``message`` to ``ref`` after ``delay`` seconds, on the process-wide timer."""
    return _SERVICE.send_after(ref, message, delay)
