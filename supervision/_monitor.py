"""Learn when any pykka actor stops, and why, from pykka's own hooks: no mixin, no polling.

An ``ActorMonitor`` wraps the actor instance's loop setup, failure handler and teardown.
"""

from __future__ import annotations

import enum
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import pykka

from supervision._log import get_logger
from supervision._spec import Decider, Directive

__all__ = [
    "ActorMonitor",
    "ExitReason",
    "Terminated",
    "Watch",
    "monitor",
    "start_monitored",
    "watch",
]

_log = get_logger("supervision.monitor")

A = TypeVar("A", bound=pykka.Actor)


class ExitReason(enum.Enum):
    """Why an actor stopped."""

    NORMAL = "normal"
    """It was stopped (by itself or by anyone but its supervisor) without failing."""
    FAILED = "failed"
    """It raised in on_start, while handling a tell, or in on_stop."""
    KILLED = "killed"
    """Its supervisor stopped it."""
    NOPROC = "noproc"
    """It was already gone when the watch was set up; the reason is unknown."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """Told to a watcher once the watched actor has stopped."""

    ref: pykka.ActorRef[Any]
    reason: ExitReason
    error: BaseException | None = None


TerminatedCallback = Callable[[Terminated], None]


class ActorMonitor:
    """The lifecycle of one actor: started, failed with which error, terminated.

    Callbacks given to ``on_terminated`` run once, on the actor's own thread right after
    its loop ends (or at once, on the caller's thread, if it has ended already). They
    must be quick and must not block: telling an actor is the intended use.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_cond",
        "_started",
        "_terminated",
        "before_teardown",
        "decider",
        "directive",
        "error",
        "ref",
        "stop_requested",
    )

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.error: BaseException | None = None
        self.stop_requested = False
        self._cond = threading.Condition(threading.Lock())
        self._started = False
        self._terminated: Terminated | None = None
        self._callbacks: list[TerminatedCallback] = []
        self.before_teardown: Callable[[], None] | None = None
        """Run on the actor's thread as its loop ends, before pykka's teardown drains the inbox."""
        self.decider: Decider | None = None
        """Consulted, on the actor's thread, for each failure of the running actor."""
        self.directive: Directive | None = None
        """What the decider said about the failure that stopped the actor."""

    @property
    def terminated(self) -> Terminated | None:
        """The Terminated record once the actor has stopped, else None."""
        return self._terminated

    def on_terminated(self, callback: TerminatedCallback) -> Callable[[], None]:
        """Call ``callback(Terminated)`` once the actor stops; returns a canceller."""
        with self._cond:
            record = self._terminated
            if record is None:
                self._callbacks.append(callback)
        if record is not None:
            callback(record)

        def cancel() -> None:
            with self._cond:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return cancel

    def wait_started(self, timeout: float | None) -> bool:
        """Wait until on_start has returned. False if it failed, the actor died, or time ran out."""
        with self._cond:
            self._cond.wait_for(lambda: self._started or self._terminated is not None, timeout)
            return self._started and self.error is None and self._terminated is None

    def wait_terminated(self, timeout: float | None) -> bool:
        """Wait until the actor's loop has ended. False if time ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._terminated is not None, timeout)

    def request_stop(self) -> None:
        """Stop the actor on behalf of its supervisor: it will end KILLED, not NORMAL."""
        self.stop_requested = True
        self.ref.stop(block=False)

    def kill(self, error: BaseException | None = None) -> None:
        """Stop the actor at once, from any thread: it is dead to every caller now, its
        queued messages are not handled, its on_stop is skipped. A handler running now
        finishes on its thread. With ``error`` it ends FAILED with it, else KILLED."""
        actor = self.ref._actor_weakref()
        if error is None:
            self.stop_requested = True
        else:
            self._record_failure(error)
        if actor is not None:
            actor.__dict__["on_stop"] = _skip
        # The stop marker wakes an idle loop; the flag ends a busy one after its handler.
        self.ref.stop(block=False)
        self.ref.actor_stopped.set()
        pykka.ActorRegistry.unregister(self.ref)

    def _decide(self, error: BaseException | None) -> Directive | None:
        """The decider's word on a failure of the running actor (None: not asked)."""
        decider = self.decider
        if decider is None or error is None or not self._started:
            return None
        if self.ref.actor_stopped.is_set():
            return None  # on_stop or a kill: the actor is stopping anyway
        try:
            directive: object = decider(error)
        except Exception as decider_error:  # noqa: BLE001 - a decider's bug must not hide the failure
            _log.error("monitor.decider_failed", actor=str(self.ref), error=repr(decider_error))
            return Directive.RESTART
        if not isinstance(directive, Directive):
            _log.error("monitor.decider_failed", actor=str(self.ref), result=repr(directive))
            return Directive.RESTART
        return directive

    def _mark_started(self) -> None:
        with self._cond:
            self._started = True
            self._cond.notify_all()

    def _record_failure(self, error: BaseException | None) -> None:
        if self.error is None:
            self.error = error

    def _terminate(self) -> None:
        if self.error is not None:
            reason = ExitReason.FAILED
        elif self.stop_requested:
            reason = ExitReason.KILLED
        else:
            reason = ExitReason.NORMAL
        with self._cond:
            if self._terminated is not None:
                return
            record = self._terminated = Terminated(self.ref, reason, self.error)
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for callback in callbacks:
            try:
                callback(record)
            except Exception as error:  # noqa: BLE001 - a watcher's bug must not hide others
                _log.error("monitor.callback_failed", actor=str(self.ref), error=repr(error))


def _skip() -> None:
    """Stands in for the on_stop of an actor that was killed."""


_monitors: weakref.WeakValueDictionary[str, ActorMonitor] = weakref.WeakValueDictionary()
_monitors_lock = threading.Lock()


def _install(actor: pykka.Actor) -> ActorMonitor:
    """Wrap the actor instance's lifecycle methods so that ``monitor`` sees them."""
    with _monitors_lock:
        existing: ActorMonitor | None = actor.__dict__.get("_supervision_monitor")
        if existing is not None:
            return existing
        mon = ActorMonitor(actor.actor_ref)
        actor.__dict__["_supervision_monitor"] = mon
        _monitors[actor.actor_urn] = mon

    setup = actor._actor_loop_setup
    teardown = actor._actor_loop_teardown
    handle_failure = actor._handle_failure

    def monitored_setup() -> None:
        setup()
        mon._mark_started()

    def monitored_handle_failure(
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        directive = mon._decide(exc_value)
        if directive is Directive.RESUME:
            _log.warning("monitor.resumed", actor=str(mon.ref), error=repr(exc_value))
            return
        if mon.error is None:
            mon.directive = directive
        mon._record_failure(exc_value)
        handle_failure(exc_type, exc_value, traceback)

    def monitored_teardown() -> None:
        hook = mon.before_teardown
        if hook is not None:
            try:
                hook()
            except Exception as error:  # noqa: BLE001 - the teardown must still run
                _log.error("monitor.teardown_hook_failed", actor=str(mon.ref), error=repr(error))
        try:
            teardown()
        finally:
            mon._terminate()

    # Instance attributes shadow the class's methods: pykka looks these up on self.
    actor.__dict__["_actor_loop_setup"] = monitored_setup
    actor.__dict__["_handle_failure"] = monitored_handle_failure
    actor.__dict__["_actor_loop_teardown"] = monitored_teardown
    return mon


def start_monitored(
    actor_class: type[A], *args: Any, **kwargs: Any
) -> tuple[pykka.ActorRef[A], ActorMonitor]:
    """Start ``actor_class`` like ``Actor.start`` does, with a monitor set before its loop runs.

    This is ``pykka.Actor.start`` with one step added between creating and starting the
    actor, so the monitor sees on_start and cannot miss an early failure.
    """
    actor = actor_class(*args, **kwargs)
    if getattr(actor, "_actor_ref", None) is None:
        raise TypeError(f"{actor_class.__name__}.__init__() did not call super().__init__()")
    mon = _install(actor)
    pykka.ActorRegistry.register(actor.actor_ref)
    actor._start_actor_loop()
    return actor.actor_ref, mon


def monitor(ref: pykka.ActorRef[Any]) -> ActorMonitor | None:
    """The monitor of the actor behind ``ref``, installing one if needed.

    Returns None if the actor is already gone and was never monitored. An actor that
    was started without ``start_monitored`` gets a monitor while it runs: it then
    reports NORMAL or FAILED correctly for the rest of its life, but its start is not seen.
    """
    with _monitors_lock:
        existing = _monitors.get(ref.actor_urn)
    if existing is not None:
        return existing
    actor = ref._actor_weakref()
    if actor is None:
        return None
    mon = _install(actor)
    # The wrapped teardown runs only if the loop had not yet ended when we wrapped it;
    # once the stopped flag is up we cannot tell, so end the record here (idempotent).
    mon._mark_started()
    if ref.actor_stopped.is_set():
        mon._terminate()
    return mon


class Watch:
    """A watch set up by ``watch``; ``cancel()`` stops it before it fires."""

    __slots__ = ("_cancel",)

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel

    def cancel(self) -> None:
        self._cancel()


def watch(watched: pykka.ActorRef[Any], watcher: pykka.ActorRef[Any]) -> Watch:
    """Tell ``watcher`` a ``Terminated`` message once ``watched`` stops.

    Works for any pykka actor. If ``watched`` is already gone, the Terminated message
    (reason NOPROC unless its end was seen) is told at once.
    """

    def tell(record: Terminated) -> None:
        try:
            watcher.tell(record)
        except pykka.ActorDeadError:
            _log.debug("monitor.watcher_dead", watcher=str(watcher), watched=str(watched))

    mon = monitor(watched)
    if mon is None:
        tell(Terminated(watched, ExitReason.NOPROC))
        return Watch(lambda: None)
    return Watch(mon.on_terminated(tell))
