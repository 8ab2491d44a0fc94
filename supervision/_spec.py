"""Declarative specs for supervision trees: strategies, restart types, backoff, children."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pykka
import tenacity

__all__ = [
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildStart",
    "Restart",
    "Strategy",
    "SupervisorSpec",
]


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


# tenacity's wait strategies read only attempt_number from the call state they are given.
_RETRYING = tenacity.Retrying()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Spaces restarts of a child: ``min_delay * factor**(attempt-1)``, capped, plus jitter.

    ``attempt`` counts consecutive restarts of the same child; it goes back to 1 once
    the child has run for ``reset_after`` seconds without failing. ``jitter`` adds a
    uniformly random delay in ``[0, jitter]`` seconds (the result is still capped at
    ``max_delay``). The timing itself is tenacity's ``wait_exponential`` plus ``wait_random``.
    """

    min_delay: float = 0.1
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0
    reset_after: float = 60.0
    _wait: tenacity.wait.wait_base = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("min_delay", "max_delay", "jitter", "reset_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"Backoff.{name} must be a number, not {type(value).__name__}")
            if value < 0 or math.isnan(value):
                raise ValueError(f"Backoff.{name} must be >= 0, got {value!r}")
        if self.max_delay < self.min_delay:
            raise ValueError(
                f"Backoff.max_delay ({self.max_delay!r}) is below min_delay ({self.min_delay!r})"
            )
        if not isinstance(self.factor, int | float) or self.factor < 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")
        wait: tenacity.wait.wait_base = tenacity.wait_exponential(
            multiplier=self.min_delay, max=self.max_delay, exp_base=self.factor
        )
        if self.jitter:
            wait = wait + tenacity.wait_random(0, self.jitter)
        object.__setattr__(self, "_wait", wait)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1 for the first)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        state = tenacity.RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return min(float(self._wait(state)), self.max_delay)


ChildStart: TypeAlias = "type[pykka.Actor] | SupervisorSpec | Callable[..., pykka.ActorRef[Any]]"
"""What a ChildSpec starts: an actor class, a nested supervisor, or a factory of refs."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    ``start`` is a pykka Actor class (started with ``args``/``kwargs``; any plain
    ``pykka.ThreadingActor`` subclass works), a :class:`SupervisorSpec` (a nested
    supervisor), or a callable ``start(*args, **kwargs) -> ActorRef``.
    """

    id: str
    start: ChildStart
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec.id must be a non-empty string, got {self.id!r}")
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
        if self.shutdown_timeout < 0:
            raise ValueError(
                f"ChildSpec {self.id!r}: shutdown_timeout must be >= 0, "
                f"got {self.shutdown_timeout!r}"
            )


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity, backoff and children.

    More than ``max_restarts`` restarts within ``within_seconds`` make the supervisor
    stop its children (in reverse order) and fail with RestartIntensityExceeded. With
    ``Strategy.SIMPLE_ONE_FOR_ONE`` ``children`` holds exactly one template and no child
    is started until ``start_child`` is called.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within_seconds: float = 5.0
    backoff: Backoff | None = None
    children: Sequence[ChildSpec] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            raise TypeError(f"SupervisorSpec.strategy must be a Strategy, got {self.strategy!r}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"SupervisorSpec.max_restarts must be >= 0, got {self.max_restarts!r}")
        if self.within_seconds <= 0:
            raise ValueError(
                f"SupervisorSpec.within_seconds must be > 0, got {self.within_seconds!r}"
            )
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


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A child as ``which_children()`` reports it. ``ref`` is None while it is not running."""

    id: str
    ref: pykka.ActorRef[Any] | None
    alive: bool
