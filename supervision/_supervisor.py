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

from supervision._errors import ChildFailureEscalated, ChildStartError, RestartIntensityExceeded
from supervision._log import get_logger
from supervision._monitor import ActorMonitor, ExitReason, Terminated, monitor, start_monitored
from supervision._names import NameEntry, claim
from supervision._spec import (
    AutoShutdown,
    ChildInfo,
    ChildSpec,
    Directive,
    Restart,
    Shutdown,
    Strategy,
    SupervisorSpec,
)
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
    directive: Directive | None = None


@dataclass(frozen=True, slots=True)
class _RestartDue:
    """Told by the timer when a child's backoff delay has passed."""

    child_ids: tuple[str, ...]
    token: int


class _Child:
    """A supervisor's record of one child."""

    __slots__ = (
        "dynamic",
        "entry",
        "incarnation",
        "monitor",
        "pending",
        "ref",
        "restart_attempt",
        "restarts",
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
        self.restarts = 0  # starts after the first, by this supervisor's strategy
        self.pending: tuple[int, Cancellable] | None = None
        self.entry: NameEntry | None = None  # its name, held from start to its final exit


class Supervisor(pykka.ThreadingActor):
    """A pykka actor that supervises other pykka actors, OTP style.

    Start one with ``Supervisor.start(spec)``; it returns after every child has started
    (each child's on_start has returned before the next is started). Stop it with
    ``ref.stop()``: children stop in reverse order, each as its ``shutdown`` says.

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
        self._stopping = False

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
        if self._stopping and isinstance(message, _ChildExited | _RestartDue):
            return None
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

    def _actor_loop_teardown(self) -> None:
        # However the loop ended (a kill skips on_stop), no child outlives its supervisor
        # (test_a_killed_supervisor_stops_its_children).
        self._stop_all()
        super()._actor_loop_teardown()

    # -- introspection and dynamic children (through the proxy) ----------------------------

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order, with its ref (None while not running) and how
        often it was restarted."""
        return [
            ChildInfo(
                c.spec.id, c.ref, c.ref is not None and c.ref.is_alive(), c.spec.name, c.restarts
            )
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
            limit = self.spec.max_children
            if limit is not None and len(self._children) >= limit:
                raise ChildStartError(
                    template.id,
                    RuntimeError(
                        f"supervisor {self.name} already runs max_children={limit} children"
                    ),
                )
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
            self._release(child)
            raise ChildStartError(spec.id, error) from error
        self._children.append(child)
        assert child.ref is not None
        return child.ref

    def terminate_child(self, child_id: str) -> None:
        """Stop a child: a static one keeps its spec (see restart_child), a dynamic one goes."""
        child = self._get(child_id)
        self._cancel_pending(child)
        self._release(child)
        self._stop_child(child)
        if child.dynamic or child.spec.restart is Restart.TEMPORARY:
            self._children.remove(child)

    def delete_child(self, child_id: str) -> None:
        """Forget a stopped static child's spec (OTP's delete_child); see terminate_child.

        Raises:
            LookupError: no such child.
            ValueError: the supervisor is SIMPLE_ONE_FOR_ONE (use terminate_child).
            RuntimeError: the child runs or waits to restart.
        """
        if self.spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
            raise ValueError(
                f"supervisor {self.name} is SIMPLE_ONE_FOR_ONE: its children have no spec "
                "to delete; terminate_child removes them"
            )
        child = self._get(child_id)
        if child.ref is not None or child.pending is not None:
            raise RuntimeError(
                f"child {child_id!r} of supervisor {self.name} is running; terminate_child it first"
            )
        self._children.remove(child)

    def get_childspec(self, child_id: str) -> ChildSpec:
        """The ChildSpec of a child (a dynamic one's, with its own id and args)."""
        return self._get(child_id).spec

    def restart_child(self, child_id: str) -> pykka.ActorRef[Any]:
        """Stop a child if it runs, then start it again; return the new ref."""
        child = self._get(child_id)
        self._cancel_pending(child)
        self._stop_child(child)
        error = self._start(child)
        if error is not None:
            self._release(child)
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
                self._release(child)
                self._stop_all()
                raise ChildStartError(spec.id, error) from error
            self._children.append(child)

    def _start(self, child: _Child) -> BaseException | None:
        """Start one child and wait for its on_start; return the error if it failed."""
        spec = child.spec
        child.incarnation = incarnation = next(_incarnations)
        started_at = self._clock()
        try:
            if spec.name is not None and (child.entry is None or child.entry.released):
                owner = f"child {spec.id!r} of supervisor {self.name}"
                child.entry = claim(spec.name, owner, spec.restart_buffer)
            ref, mon = self._spawn(spec)
        except Exception as spawn_error:  # noqa: BLE001 - any start error is the child's failure
            self._log.error("supervisor.child_start_failed", child=spec.id, error=repr(spawn_error))
            return spawn_error
        if not self._wait_started(ref, mon):
            error = mon.error or RuntimeError(f"child {spec.id!r} did not finish on_start")
            self._log.error("supervisor.child_start_failed", child=spec.id, error=repr(error))
            if ref.is_alive():
                self._stop_monitored(spec, mon)
            return error
        child.ref, child.monitor, child.started_at = ref, mon, started_at
        mon.decider = spec.decider
        entry = child.entry
        if entry is not None:
            mon.before_teardown = lambda: entry.take_leftovers(ref)
            entry.attach(ref)
        mon.on_terminated(self._exit_notifier(spec.id, incarnation, mon))
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

    def _exit_notifier(
        self, child_id: str, incarnation: int, mon: ActorMonitor
    ) -> Callable[[Terminated], None]:
        supervisor = self.actor_ref

        def notify(record: Terminated) -> None:
            # Runs on the child's thread as its loop ends.
            exited = _ChildExited(child_id, incarnation, record.reason, record.error, mon.directive)
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(exited)

        return notify

    def _child_exited(self, message: _ChildExited) -> None:
        child = self._find(message.child_id)
        if child is None or child.incarnation != message.incarnation:
            return  # an exit we caused (restart, terminate) or of a child since replaced
        self._on_exit(child, message.reason, message.error, message.directive)

    def _on_exit(
        self,
        child: _Child,
        reason: ExitReason,
        error: BaseException | None,
        directive: Directive | None = None,
    ) -> None:
        spec = child.spec
        child.ref = child.monitor = None
        child.incarnation = 0
        if reason is ExitReason.FAILED:
            self._log.warning(
                "supervisor.child_failed",
                child=spec.id,
                error=repr(error),
                directive=directive.value if directive is not None else None,
            )
            if directive is Directive.ESCALATE:
                self._escalate(
                    ChildFailureEscalated(
                        self.name, self.spec.max_restarts, self.spec.within_seconds, spec.id, error
                    )
                )
        else:
            self._log.info("supervisor.child_stopped", child=spec.id, reason=reason.value)
        restart = directive is not Directive.STOP and (
            spec.restart is Restart.PERMANENT
            or (spec.restart is Restart.TRANSIENT and reason is ExitReason.FAILED)
        )
        if not restart:
            self._release(child)
            if child.dynamic or spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            self._auto_shutdown(child)
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
            child.restarts += 1
            error = self._start(child)
            if error is not None:
                # A failed restart is a failure like any other: it counts toward the
                # restart intensity, handled as a message once this one is done.
                self.actor_ref.tell(
                    _ChildExited(child.spec.id, child.incarnation, ExitReason.FAILED, error)
                )

    def _auto_shutdown(self, ended: _Child) -> None:
        """A child exited for good by itself: stop the supervisor if auto_shutdown says so."""
        mode = self.spec.auto_shutdown
        if mode is AutoShutdown.NEVER or not ended.spec.significant:
            return
        if mode is AutoShutdown.ALL_SIGNIFICANT and any(
            c.spec.significant and (c.ref is not None or c.pending is not None)
            for c in self._children
        ):
            return
        self._log.info("supervisor.auto_shutdown", child=ended.spec.id, mode=mode.value)
        self._stopping = True
        self._stop_all()
        self.actor_ref.stop(block=False)

    def _escalate(self, error: RestartIntensityExceeded | None = None) -> None:
        if error is None:
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
        self._stop_monitored(child.spec, mon)

    def _stop_monitored(self, spec: ChildSpec, mon: ActorMonitor) -> None:
        """Stop one child as its ``shutdown`` says: kill it, or ask and wait (then kill)."""
        shutdown = spec.shutdown
        if shutdown is Shutdown.BRUTAL_KILL:
            mon.kill()
            self._log.info("supervisor.child_stopped", child=spec.id, reason="brutal_kill")
            return
        mon.request_stop()
        timeout = None if shutdown is Shutdown.INFINITY else shutdown
        assert not isinstance(timeout, Shutdown)
        if not mon.wait_terminated(timeout):
            # OTP's order: ask, wait the shutdown time, then kill (test_shutdown_timeout_kills).
            self._log.error("supervisor.shutdown_timeout", child=spec.id, timeout=timeout)
            mon.kill()
            return
        self._log.info("supervisor.child_stopped", child=spec.id, reason="shutdown")

    def _release(self, child: _Child) -> None:
        """The child will not run again under its name: free the name."""
        if child.entry is not None:
            child.entry.release()
            child.entry = None

    def _stop_all(self) -> None:
        for child in reversed(self._children):
            self._cancel_pending(child)
            self._release(child)
            self._stop_child(child)
