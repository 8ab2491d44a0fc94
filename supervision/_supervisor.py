"""The Supervisor actor: starts children, restarts them by strategy, escalates when it must."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pykka
from pykka.messages import ProxyGetAttr

from supervision._errors import ChildStartError, RestartIntensityExceeded
from supervision._log import get_logger
from supervision._monitor import ActorMonitor, ExitReason, Terminated, monitor, start_monitored
from supervision._spec import ChildInfo, ChildSpec, Restart, Strategy, SupervisorSpec
from supervision._timer import Cancellable, Timer, timer_service

__all__ = ["Supervisor"]

# How long a supervisor waits for a child's on_start. OTP waits forever; we refuse to.
START_TIMEOUT = 30.0

_names = itertools.count(1)
_incarnations = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _StartChildren:
    """Asked once by ``Supervisor.start``: start the static children in order."""


@dataclass(frozen=True, slots=True)
class _ChildExited:
    """Told by a child's monitor, on the child's thread, when the child has stopped."""

    child_id: str
    incarnation: int
    reason: ExitReason
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class _RestartDue:
    """Told by the timer when a child's backoff delay has passed."""

    child_ids: tuple[str, ...]
    token: int


class _Child:
    """A supervisor's record of one child."""

    __slots__ = (
        "dynamic",
        "incarnation",
        "monitor",
        "pending",
        "ref",
        "restart_attempt",
        "spec",
        "started_at",
    )

    def __init__(self, spec: ChildSpec, *, dynamic: bool = False) -> None:
        self.spec = spec
        self.dynamic = dynamic
        self.ref: pykka.ActorRef[Any] | None = None
        self.monitor: ActorMonitor | None = None
        self.incarnation = 0
        self.started_at = 0.0
        self.restart_attempt = 0
        self.pending: tuple[int, Cancellable] | None = None


class Supervisor(pykka.ThreadingActor):
    """A pykka actor that supervises other pykka actors, OTP style.

    Start one with ``Supervisor.start(spec)``; it returns after every child has started
    (each child's on_start has returned before the next is started). Stop it with
    ``ref.stop()``: children stop in reverse order, each given its shutdown_timeout.

    Children are ordinary pykka actors. A child fails when it raises in on_start or while
    handling a tell (pykka then stops it); an exception in an ask goes back to the caller
    and the child lives on; a child that stops itself has exited normally. The supervisor
    learns each exit as a message from the child's monitor and applies its strategy.

    All methods run on the supervisor's own thread; call them through ``ref.proxy()``::

        ref = Supervisor.start(SupervisorSpec(children=[ChildSpec("cache", Cache)]))
        ref.proxy().which_children().get()
    """

    def __init__(
        self,
        spec: SupervisorSpec,
        name: str,
        on_escalate: Callable[[RestartIntensityExceeded], Any] | None,
        timer: Timer,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.spec = spec
        self.name = name
        self._on_escalate = on_escalate
        self._timer = timer
        self._clock = clock
        self._children: list[_Child] = []
        self._restart_times: deque[float] = deque()
        self._dynamic_ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._log = get_logger("supervision", supervisor=name)

    @classmethod
    def start(
        cls,
        spec: SupervisorSpec,
        *,
        name: str | None = None,
        on_escalate: Callable[[RestartIntensityExceeded], Any] | None = None,
        timer: Timer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> pykka.ActorRef[Supervisor]:
        """Start a supervisor and its children; return its ref once they all run.

        Args:
            spec: the strategy, restart intensity, backoff and children.
            name: shown in logs and errors; defaults to ``supervisor-N``.
            on_escalate: called (on the supervisor's thread) with the
                RestartIntensityExceeded when this supervisor gives up. Use it on a root
                supervisor: a nested one escalates to its parent instead.
            timer: where backoff delays are scheduled; the process-wide timer service
                by default. Tests inject a fake one.
            clock: monotonic seconds, for restart intensity and backoff reset.

        Raises:
            ChildStartError: a child failed to start; the children already started have
                been stopped in reverse order and the supervisor is stopped.
        """
        ref, _ = cls._start_monitored(
            spec,
            name=name or f"supervisor-{next(_names)}",
            on_escalate=on_escalate,
            timer=timer or timer_service(),
            clock=clock,
        )
        return ref

    @classmethod
    def _start_monitored(
        cls,
        spec: SupervisorSpec,
        *,
        name: str,
        on_escalate: Callable[[RestartIntensityExceeded], Any] | None,
        timer: Timer,
        clock: Callable[[], float],
    ) -> tuple[pykka.ActorRef[Supervisor], ActorMonitor]:
        if not isinstance(spec, SupervisorSpec):
            raise TypeError(f"Supervisor.start takes a SupervisorSpec, got {spec!r}")
        ref, mon = start_monitored(cls, spec, name, on_escalate, timer, clock)
        try:
            ref.ask(_StartChildren())
        except BaseException:
            ref.stop()
            raise
        return ref, mon

    # -- the supervisor's own thread ------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            return self._child_exited(message)
        if isinstance(message, _RestartDue):
            return self._restart_due(message)
        if isinstance(message, _StartChildren):
            return self._start_static_children()
        return super().on_receive(message)

    def on_stop(self) -> None:
        self._stop_all()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._stop_all()

    # -- introspection and dynamic children (through the proxy) ----------------------------

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order, with its ref (None while not running)."""
        return [
            ChildInfo(c.spec.id, c.ref, c.ref is not None and c.ref.is_alive())
            for c in self._children
        ]

    def count_children(self) -> dict[str, int]:
        """OTP's counts: specs, active, supervisors, workers."""
        supervisors = sum(isinstance(c.spec.start, SupervisorSpec) for c in self._children)
        return {
            "specs": len(self._children),
            "active": sum(c.ref is not None and c.ref.is_alive() for c in self._children),
            "supervisors": supervisors,
            "workers": len(self._children) - supervisors,
        }

    def start_child(
        self,
        spec: ChildSpec | None = None,
        *,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> pykka.ActorRef[Any]:
        """Add a child and start it; return its ref.

        With SIMPLE_ONE_FOR_ONE, give no spec: the child is the template started with
        ``args`` appended to its args and ``kwargs`` merged into its kwargs, and gets the
        id ``<template id>-<n>``. Otherwise give a ChildSpec with a new id; it is added
        after the existing children.

        Raises:
            ChildStartError: the child failed to start; nothing was added.
        """
        if self.spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
            if spec is not None:
                raise ValueError(
                    f"supervisor {self.name} is SIMPLE_ONE_FOR_ONE: start_child takes "
                    "args/kwargs for its template, not a ChildSpec"
                )
            template = self.spec.children[0]
            spec = replace(
                template,
                id=f"{template.id}-{next(self._dynamic_ids)}",
                args=(*template.args, *args),
                kwargs={**(template.kwargs or {}), **(kwargs or {})},
            )
            child = _Child(spec, dynamic=True)
        else:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"start_child takes a ChildSpec, got {spec!r}")
            if args or kwargs:
                raise ValueError("args/kwargs are for SIMPLE_ONE_FOR_ONE; put them in the spec")
            if self._find(spec.id) is not None:
                raise ValueError(f"supervisor {self.name} already has a child {spec.id!r}")
            child = _Child(spec)
        error = self._start(child)
        if error is not None:
            raise ChildStartError(spec.id, error) from error
        self._children.append(child)
        assert child.ref is not None
        return child.ref

    def terminate_child(self, child_id: str) -> None:
        """Stop a child: a static one keeps its spec (see restart_child), a dynamic one goes."""
        child = self._get(child_id)
        self._cancel_pending(child)
        self._stop_child(child)
        if child.dynamic or child.spec.restart is Restart.TEMPORARY:
            self._children.remove(child)

    def restart_child(self, child_id: str) -> pykka.ActorRef[Any]:
        """Stop a child if it runs, then start it again; return the new ref."""
        child = self._get(child_id)
        self._cancel_pending(child)
        self._stop_child(child)
        error = self._start(child)
        if error is not None:
            raise ChildStartError(child_id, error) from error
        assert child.ref is not None
        return child.ref

    # -- internals ---------------------------------------------------------------------

    def _find(self, child_id: str) -> _Child | None:
        return next((c for c in self._children if c.spec.id == child_id), None)

    def _get(self, child_id: str) -> _Child:
        child = self._find(child_id)
        if child is None:
            raise LookupError(f"supervisor {self.name} has no child {child_id!r}")
        return child

    def _start_static_children(self) -> None:
        if self.spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
            return
        for spec in self.spec.children:
            child = _Child(spec)
            error = self._start(child)
            if error is not None:
                self._stop_all()
                raise ChildStartError(spec.id, error) from error
            self._children.append(child)

    def _start(self, child: _Child) -> BaseException | None:
        """Start one child and wait for its on_start; return the error if it failed."""
        spec = child.spec
        child.incarnation = incarnation = next(_incarnations)
        started_at = self._clock()
        try:
            ref, mon = self._spawn(spec)
        except Exception as spawn_error:  # noqa: BLE001 - any start error is the child's failure
            self._log.error("supervisor.child_start_failed", child=spec.id, error=repr(spawn_error))
            return spawn_error
        if not self._wait_started(ref, mon):
            error = mon.error or RuntimeError(f"child {spec.id!r} did not finish on_start")
            self._log.error("supervisor.child_start_failed", child=spec.id, error=repr(error))
            if ref.is_alive():
                mon.request_stop()
                mon.wait_terminated(spec.shutdown_timeout)
            return error
        child.ref, child.monitor, child.started_at = ref, mon, started_at
        mon.on_terminated(self._exit_notifier(spec.id, incarnation))
        self._log.info("supervisor.child_started", child=spec.id, actor=str(ref))
        return None

    def _spawn(self, spec: ChildSpec) -> tuple[pykka.ActorRef[Any], ActorMonitor]:
        start = spec.start
        if isinstance(start, SupervisorSpec):
            return type(self)._start_monitored(
                start,
                name=f"{self.name}/{spec.id}",
                on_escalate=None,
                timer=self._timer,
                clock=self._clock,
            )
        if isinstance(start, type):
            return start_monitored(start, *spec.args, **(spec.kwargs or {}))
        ref = start(*spec.args, **(spec.kwargs or {}))
        if not isinstance(ref, pykka.ActorRef):
            raise TypeError(f"child {spec.id!r}: start() returned {ref!r}, not an ActorRef")
        mon = monitor(ref)
        if mon is None:
            raise RuntimeError(f"child {spec.id!r}: the actor stopped before it could be watched")
        return ref, mon

    @staticmethod
    def _wait_started(ref: pykka.ActorRef[Any], mon: ActorMonitor) -> bool:
        if mon.wait_started(START_TIMEOUT) is False:
            return False
        try:
            # A factory's actor was monitored after it started: an ask is answered only
            # once its on_start has returned, and fails if the actor died.
            ref.ask(ProxyGetAttr(attr_path=("actor_urn",)), timeout=START_TIMEOUT)
        except (pykka.ActorDeadError, pykka.Timeout):
            return False
        return mon.error is None

    def _exit_notifier(self, child_id: str, incarnation: int) -> Callable[[Terminated], None]:
        supervisor = self.actor_ref

        def notify(record: Terminated) -> None:
            # Runs on the child's thread as its loop ends.
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(_ChildExited(child_id, incarnation, record.reason, record.error))

        return notify

    def _child_exited(self, message: _ChildExited) -> None:
        child = self._find(message.child_id)
        if child is None or child.incarnation != message.incarnation:
            return  # an exit we caused (restart, terminate) or of a child since replaced
        self._on_exit(child, message.reason, message.error)

    def _on_exit(self, child: _Child, reason: ExitReason, error: BaseException | None) -> None:
        spec = child.spec
        child.ref = child.monitor = None
        child.incarnation = 0
        if reason is ExitReason.FAILED:
            self._log.warning("supervisor.child_failed", child=spec.id, error=repr(error))
        else:
            self._log.info("supervisor.child_stopped", child=spec.id, reason=reason.value)
        restart = spec.restart is Restart.PERMANENT or (
            spec.restart is Restart.TRANSIENT and reason is ExitReason.FAILED
        )
        if not restart:
            if child.dynamic or spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            return

        now = self._clock()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.spec.within_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) > self.spec.max_restarts:
            self._escalate()

        group = self._restart_group(child)
        for sibling in reversed(group):
            if sibling is not child:
                self._cancel_pending(sibling)
                self._stop_child(sibling)
        for sibling in [s for s in group if s.spec.restart is Restart.TEMPORARY and s is not child]:
            self._children.remove(sibling)
            group.remove(sibling)

        backoff = self.spec.backoff
        if backoff is not None and now - child.started_at >= backoff.reset_after:
            child.restart_attempt = 0
        child.restart_attempt += 1
        delay = backoff.delay(child.restart_attempt) if backoff is not None else 0.0
        self._log.info(
            "supervisor.restart",
            child=spec.id,
            attempt=child.restart_attempt,
            delay=delay,
            error=repr(error) if error is not None else reason.value,
            restarting=[s.spec.id for s in group],
        )
        if delay > 0:
            token = next(self._tokens)
            handle = self._timer.send_after(
                self.actor_ref, _RestartDue(tuple(s.spec.id for s in group), token), delay
            )
            for sibling in group:
                sibling.pending = (token, handle)
        else:
            self._restart(group)

    def _restart_group(self, child: _Child) -> list[_Child]:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        if strategy is Strategy.REST_FOR_ONE:
            return self._children[self._children.index(child) :]
        return [child]

    def _restart_due(self, message: _RestartDue) -> None:
        group = []
        for child_id in message.child_ids:
            child = self._find(child_id)
            if child is not None and child.pending and child.pending[0] == message.token:
                child.pending = None
                group.append(child)
        self._restart(group)

    def _restart(self, group: list[_Child]) -> None:
        for child in group:
            if child.ref is not None or child not in self._children:
                continue
            error = self._start(child)
            if error is not None:
                # A failed restart is a failure like any other: it counts toward the
                # restart intensity, handled as a message once this one is done.
                self.actor_ref.tell(
                    _ChildExited(child.spec.id, child.incarnation, ExitReason.FAILED, error)
                )

    def _escalate(self) -> None:
        error = RestartIntensityExceeded(
            self.name, self.spec.max_restarts, self.spec.within_seconds
        )
        self._log.error("supervisor.escalate", error=str(error))
        self._stop_all()
        if self._on_escalate is not None:
            try:
                self._on_escalate(error)
            except Exception as callback_error:  # noqa: BLE001
                self._log.error("supervisor.on_escalate_failed", error=repr(callback_error))
        raise error

    def _cancel_pending(self, child: _Child) -> None:
        if child.pending is not None:
            child.pending[1].cancel()
            child.pending = None

    def _stop_child(self, child: _Child) -> None:
        ref, mon = child.ref, child.monitor
        child.ref = child.monitor = None
        child.incarnation = 0  # its exit message, when it comes, is ours: ignore it
        if ref is None or mon is None:
            return
        mon.request_stop()
        if not mon.wait_terminated(child.spec.shutdown_timeout):
            self._log.error(
                "supervisor.shutdown_timeout",
                child=child.spec.id,
                timeout=child.spec.shutdown_timeout,
            )
            return
        self._log.info("supervisor.child_stopped", child=child.spec.id, reason="shutdown")

    def _stop_all(self) -> None:
        for child in reversed(self._children):
            self._cancel_pending(child)
            self._stop_child(child)
