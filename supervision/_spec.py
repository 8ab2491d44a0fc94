"""Declarative specs for supervision trees: strategies, restart types, backoff, children."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pykka
import tenacity

from supervision._validate import (
    check_flag,
    check_int,
    check_number,
    check_seconds,
    check_text,
    show,
)

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildStart",
    "Decider",
    "Directive",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorSpec",
]

DEFAULT_SHUTDOWN = 5.0
"""Seconds a worker child gets to stop when ChildSpec gives neither shutdown form."""

DEFAULT_RESTART_BUFFER = 10_000
"""Messages a named child's reference holds while the child restarts (ChildSpec.restart_buffer)."""


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them fails (OTP's meaning)."""

    ONE_FOR_ONE = "one_for_one"
    """Restart only the child that failed."""
    ONE_FOR_ALL = "one_for_all"
    """Stop every other child (in reverse order), then start all of them again in order."""
    REST_FOR_ONE = "rest_for_one"
    """Restart the failed child and the children started after it."""
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"
    """Dynamic children of one template, added with ``start_child``; restarted one by one."""


class Restart(enum.Enum):
    """When a child that exited is started again (OTP's meaning)."""

    PERMANENT = "permanent"
    """Always restarted, whether it failed or exited normally."""
    TRANSIENT = "transient"
    """Restarted only after a failure; a normal exit is final."""
    TEMPORARY = "temporary"
    """Never restarted."""


class AutoShutdown(enum.Enum):
    """When a supervisor stops itself because significant children exited (OTP 24)."""

    NEVER = "never"
    """Never; no child may be significant."""
    ANY_SIGNIFICANT = "any_significant"
    """As soon as one significant child has exited for good."""
    ALL_SIGNIFICANT = "all_significant"
    """Once every significant child has exited for good."""


class Shutdown(enum.Enum):
    """The two non-numeric ways a supervisor stops a child (a number is seconds to wait)."""

    BRUTAL_KILL = "brutal_kill"
    """Stop at once: the actor is dead to every caller, its queued messages are dropped and
    its on_stop is skipped. A handler already running finishes on its thread (Python
    cannot kill a thread); the supervisor does not wait for it."""
    INFINITY = "infinity"
    """Wait as long as the child takes (the default for a nested supervisor)."""


class Directive(enum.Enum):
    """What a ChildSpec's decider says to do about one exception (Akka's directives)."""

    RESTART = "restart"
    """Apply the supervisor's strategy, as without a decider."""
    STOP = "stop"
    """Stop the child for good, whatever its restart type."""
    ESCALATE = "escalate"
    """Stop every child and fail the supervisor itself (its parent decides)."""
    RESUME = "resume"
    """Keep the actor and its state; only the failing message is lost."""


Decider: TypeAlias = Callable[[BaseException], Directive]
"""Maps a child's exception to a Directive; runs on the child's thread, so keep it pure."""


# tenacity's wait strategies read only attempt_number from the call state they are given.
_RETRYING = tenacity.Retrying()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Spaces restarts of a child: ``min_delay * factor**(attempt-1)``, capped, plus jitter.

    ``attempt`` counts consecutive restarts of the same child; it goes back to 1 once
    the child has run for ``reset_after`` seconds without failing. ``jitter`` adds a
    uniformly random delay in ``[0, jitter]`` seconds (the result is still capped at
    ``max_delay``). The timing itself is tenacity's ``wait_exponential`` plus ``wait_random``.

    Every field is a finite number of seconds from 0 to ``threading.TIMEOUT_MAX`` (``factor``
    from 1); nan, infinities and larger values are refused with ValueError, non-numbers
    (and bools) with TypeError.
    """

    min_delay: float = 0.1
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0
    reset_after: float = 60.0
    _wait: tenacity.wait.wait_base = field(init=False, repr=False, compare=False)
    _cap_attempt: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("min_delay", "max_delay", "jitter", "reset_after"):
            check_seconds(f"Backoff.{name}", getattr(self, name))
        # A factor is no duration, but a factor that large is no backoff either.
        check_number("Backoff.factor", self.factor, minimum=1.0)
        if self.max_delay < self.min_delay:
            raise ValueError(
                f"Backoff.max_delay ({self.max_delay!r}) is below min_delay ({self.min_delay!r})"
            )
        wait: tenacity.wait.wait_base = tenacity.wait_exponential(
            multiplier=self.min_delay, max=self.max_delay, exp_base=self.factor
        )
        if self.jitter:
            wait = wait + tenacity.wait_random(0, self.jitter)
        object.__setattr__(self, "_wait", wait)
        object.__setattr__(self, "_cap_attempt", self._last_growing_attempt())

    def _last_growing_attempt(self) -> int:
        """An attempt from which on the exponential part is ``max_delay`` (or stays put).

        ``delay`` hands tenacity no larger attempt: the result is the same, and no huge
        attempt number can cost a huge power (or tenacity's OverflowError fallback, which
        returns ``max_delay`` even where the delay should stay 0).
        """
        if self.min_delay == 0 or self.factor == 1 or self.max_delay <= self.min_delay:
            return 1
        growth = (math.log(self.max_delay) - math.log(self.min_delay)) / math.log(self.factor)
        return 2 + math.ceil(growth)  # one more than needed, against rounding

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1 for the first).

        Never more than ``max_delay``, however large ``attempt`` is.
        """
        check_int("attempt", attempt, minimum=1)
        state = tenacity.RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = min(attempt, self._cap_attempt)
        return min(float(self._wait(state)), float(self.max_delay))


ChildStart: TypeAlias = "type[pykka.Actor] | SupervisorSpec | Callable[..., pykka.ActorRef[Any]]"
"""What a ChildSpec starts: an actor class, a nested supervisor, or a factory of refs."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    ``start`` is a pykka Actor class (started with ``args``/``kwargs``; any plain
    ``pykka.ThreadingActor`` subclass works), a :class:`SupervisorSpec` (a nested
    supervisor), or a callable ``start(*args, **kwargs) -> ActorRef``.

    ``shutdown`` is seconds to wait for the child to stop (then it is killed), or a
    :class:`Shutdown`; ``shutdown_timeout`` is the seconds form under its old name. With
    neither, a worker gets 5 seconds and a nested supervisor INFINITY. After construction
    ``shutdown`` always holds the resolved value.

    ``name`` registers the running child for ``whereis``/``named``; a named reference holds
    up to ``restart_buffer`` messages while the child restarts. ``significant`` (transient
    or temporary children only) lets the child's exit stop the supervisor, as its
    ``auto_shutdown`` says. ``decider`` maps the child's exception to a :class:`Directive`.
    """

    id: str
    start: ChildStart
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float | None = None
    name: str | None = None
    significant: bool = False
    shutdown: float | Shutdown | None = None
    decider: Decider | None = None
    restart_buffer: int = DEFAULT_RESTART_BUFFER

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec.id must be a non-empty string, got {show(self.id)}")
        if not (
            isinstance(self.start, SupervisorSpec)
            or (isinstance(self.start, type) and issubclass(self.start, pykka.Actor))
            or (callable(self.start) and not isinstance(self.start, type))
        ):
            raise TypeError(
                f"ChildSpec {self.id!r}: start must be a pykka Actor class, a SupervisorSpec "
                f"or a callable returning an ActorRef, got {self.start!r}"
            )
        if not isinstance(self.restart, Restart):
            raise TypeError(
                f"ChildSpec {self.id!r}: restart must be a Restart, got {self.restart!r}"
            )
        object.__setattr__(self, "args", tuple(self.args))
        where = f"ChildSpec {self.id!r}"
        if self.name is not None:
            check_text(f"{where}: name", self.name, allow_empty=False)
        check_flag(f"{where}: significant", self.significant)
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError(
                f"{where}: a significant child must be TRANSIENT or TEMPORARY, not PERMANENT "
                "(a permanent child never exits for good)"
            )
        if self.decider is not None and not callable(self.decider):
            raise TypeError(f"{where}: decider must be callable, got {show(self.decider)}")
        check_int(f"{where}: restart_buffer", self.restart_buffer, minimum=0)
        object.__setattr__(self, "shutdown", self._resolve_shutdown(where))

    def _resolve_shutdown(self, where: str) -> float | Shutdown:
        timeout, shutdown = self.shutdown_timeout, self.shutdown
        if timeout is not None:
            timeout = check_seconds(f"{where}: shutdown_timeout", timeout)
        if shutdown is None:
            if timeout is not None:
                return timeout
            return Shutdown.INFINITY if isinstance(self.start, SupervisorSpec) else DEFAULT_SHUTDOWN
        if not isinstance(shutdown, Shutdown):
            shutdown = check_seconds(f"{where}: shutdown", shutdown)
        if timeout is not None and shutdown != timeout:
            raise ValueError(
                f"{where}: shutdown ({show(shutdown)}) and shutdown_timeout ({show(timeout)}) "
                "disagree; give one of them"
            )
        return shutdown


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity, backoff and children.

    More than ``max_restarts`` restarts within ``within_seconds`` make the supervisor
    stop its children (in reverse order) and fail with RestartIntensityExceeded. With
    ``Strategy.SIMPLE_ONE_FOR_ONE`` ``children`` holds exactly one template and no child
    is started until ``start_child`` is called (at most ``max_children`` at once, if set).
    ``max_restarts`` is an int >= 0 (not a bool); ``within_seconds`` a finite number of
    seconds > 0 and <= ``threading.TIMEOUT_MAX``. ``auto_shutdown`` stops the supervisor
    (normally) once any or all significant children have exited for good; with NEVER no
    child may be significant, and SIMPLE_ONE_FOR_ONE takes only NEVER (as in OTP 27).
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within_seconds: float = 5.0
    backoff: Backoff | None = None
    children: Sequence[ChildSpec] = field(default_factory=tuple)
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    max_children: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            raise TypeError(f"SupervisorSpec.strategy must be a Strategy, got {self.strategy!r}")
        check_int("SupervisorSpec.max_restarts", self.max_restarts, minimum=0)
        check_seconds("SupervisorSpec.within_seconds", self.within_seconds, allow_zero=False)
        children = tuple(self.children)
        object.__setattr__(self, "children", children)
        for child in children:
            if not isinstance(child, ChildSpec):
                raise TypeError(f"SupervisorSpec.children must hold ChildSpecs, got {child!r}")
        ids = [child.id for child in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"SupervisorSpec.children: duplicate child id {duplicates[0]!r}")
        if self.strategy is Strategy.SIMPLE_ONE_FOR_ONE and len(children) != 1:
            raise ValueError(
                "SupervisorSpec: SIMPLE_ONE_FOR_ONE takes exactly one child template, "
                f"got {len(children)}"
            )
        if not isinstance(self.auto_shutdown, AutoShutdown):
            raise TypeError(
                "SupervisorSpec.auto_shutdown must be an AutoShutdown, "
                f"got {show(self.auto_shutdown)}"
            )
        if self.auto_shutdown is not AutoShutdown.NEVER:
            if self.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
                raise ValueError(
                    "SupervisorSpec.auto_shutdown must be NEVER with SIMPLE_ONE_FOR_ONE, "
                    f"got {self.auto_shutdown}"
                )
        else:
            significant = [child.id for child in children if child.significant]
            if significant:
                raise ValueError(
                    f"SupervisorSpec: child {significant[0]!r} is significant but auto_shutdown "
                    "is NEVER (set auto_shutdown, or make the child not significant)"
                )
        if self.strategy is Strategy.SIMPLE_ONE_FOR_ONE and children[0].name is not None:
            raise ValueError(
                "SupervisorSpec: a SIMPLE_ONE_FOR_ONE template cannot have a name "
                f"(its children would share it), got {children[0].name!r}"
            )
        names = [child.name for child in children if child.name is not None]
        taken = sorted({n for n in names if names.count(n) > 1})
        if taken:
            raise ValueError(f"SupervisorSpec.children: two children are named {taken[0]!r}")
        if self.max_children is not None:
            check_int("SupervisorSpec.max_children", self.max_children, minimum=1)
            if self.strategy is not Strategy.SIMPLE_ONE_FOR_ONE:
                raise ValueError(
                    "SupervisorSpec.max_children is for SIMPLE_ONE_FOR_ONE only, "
                    f"got it with {self.strategy}"
                )


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A child as ``which_children()`` reports it. ``ref`` is None while it is not running;
    ``restarts``: how many times the supervisor started it again (a failed restart
    counts too), by its strategy, since the child was added."""

    id: str
    ref: pykka.ActorRef[Any] | None
    alive: bool
    name: str | None = None
    restarts: int = 0
