"""One timer thread for the whole process: delayed messages and callbacks, cancellable."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from supervision._log import get_logger
from supervision._validate import MAX_SECONDS, check_seconds, show

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
    must return quickly (telling an actor is the intended use). Nothing one timer does
    stops the others: an exception from a callback, even a BaseException such as
    SystemExit, is logged (``timer.callback_failed``) and the thread goes on; a timer the
    thread itself cannot handle is dropped and logged (``timer.loop_failed``). Only the
    interpreter shutting down ends the thread with timers pending.

    Delays are seconds from 0 to ``threading.TIMEOUT_MAX``; nan, infinities and longer
    delays are refused with ValueError (a wait that long would overflow the clock).
    """

    def __init__(self, name: str = "supervision-timer") -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[TimerHandle] = []
        self._live = 0
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], Any]) -> TimerHandle:
        """Call ``callback()`` on the timer thread after ``delay`` seconds.

        Raises:
            TypeError: ``delay`` is not a number (a bool is not), or ``callback`` is not
                callable.
            ValueError: ``delay`` is negative, nan, infinite or above threading.TIMEOUT_MAX.
        """
        seconds = check_seconds("delay", delay)
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {show(callback)}")
        return self._schedule(time.monotonic() + seconds, callback)

    def send_after(self, ref: pykka.ActorRef[Any], message: Any, delay: float) -> TimerHandle:
        """Tell ``message`` to ``ref`` after ``delay`` seconds; a dead actor is skipped.

        Raises the same errors as :meth:`call_later` for a bad ``delay``.
        """
        seconds = check_seconds("delay", delay)

        def deliver() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                _log.debug("timer.target_dead", target=str(ref), message=repr(message))

        return self._schedule(time.monotonic() + seconds, deliver)  # checked once, above

    def _schedule(self, deadline: float, callback: Callable[[], Any]) -> TimerHandle:
        """Set a timer for the monotonic time ``deadline`` (checked by the caller)."""
        with self._cond:
            handle = TimerHandle(self, deadline, next(self._seq), callback)
            heapq.heappush(self._heap, handle)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0] is handle:
                self._cond.notify()
        return handle

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
        """The timer thread: fire due handles in deadline order, exit when none is pending.

        Every error is contained to the one timer it came from, so that a bad timer cannot
        silently end every other timer in the process; only interpreter shutdown ends it.
        """
        try:
            while True:
                try:
                    callback = self._next_due()
                except BaseException as error:  # every error: see the docstring
                    if sys.is_finalizing():
                        raise
                    self._drop_head(error)
                    continue
                if callback is None:
                    return
                try:
                    callback()
                except BaseException as error:  # every error: see the docstring
                    if sys.is_finalizing():
                        raise
                    _report("timer.callback_failed", error)
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None  # ended abnormally: the next timer starts a new one

    def _next_due(self) -> Callable[[], Any] | None:
        """Wait for the next due timer and take its callback; None once nothing is pending."""
        with self._cond:
            while True:
                if self._live == 0:
                    self._heap.clear()
                    self._thread = None  # under the lock: call_later then starts a new one
                    return None
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
                    assert callback is not None
                    return callback
                # Never wait longer than the clock can take, whatever the deadline says.
                self._cond.wait(remaining if remaining < MAX_SECONDS else MAX_SECONDS)

    def _drop_head(self, error: BaseException) -> None:
        """The loop failed on the earliest timer: drop it (it would fail again) and log."""
        with self._cond:
            head = heapq.heappop(self._heap) if self._heap else None
            if head is not None and head._state == _PENDING:
                head._state = _CANCELLED
                head._callback = None
                self._live -= 1
        _report("timer.loop_failed", error, timer=head)


def _report(event: str, error: BaseException, **fields: Any) -> None:
    """Log ``error`` at error level; a failure to log (a broken repr or log setup) is dropped.

    The keys clash with no ``logging.LogRecord`` attribute, so stdlib logging takes them.
    """
    with contextlib.suppress(Exception):
        _log.error(
            event,
            error=repr(error),
            error_type=type(error).__qualname__,
            traceback="".join(traceback.format_exception(error)),
            **{key: repr(value) for key, value in fields.items()},
        )


_SERVICE = TimerService()


def timer_service() -> TimerService:
    """The process-wide timer service (one thread for every timer, started on demand)."""
    return _SERVICE


def send_after(ref: pykka.ActorRef[Any], message: Any, delay: float) -> TimerHandle:
    """Tell ``message`` to ``ref`` after ``delay`` seconds, on the process-wide timer."""
    return _SERVICE.send_after(ref, message, delay)
