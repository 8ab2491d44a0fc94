"""Messages between the task system's own actors, and stable addresses for restartable ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors.core.attempt import Attempt
from actors.runtime.sync import Burst

__all__ = [
    "Address",
    "DelayDue",
    "Finished",
    "LimitsDue",
    "Notice",
    "Notices",
    "Registered",
    "RetryDue",
    "Settled",
    "TaskActorFailed",
    "Waiting",
    "Wake",
]


def _gone() -> bool:
    return False


class Address:
    """Where an actor that may be restarted can be reached: its current ref, or none.

    A restarted actor puts its new ref here in on_start. A tell to an actor that is
    down is dropped (and False returned): everything the task system tells the
    scheduler is also in the task store, and its next incarnation rebuilds from there.
    """

    __slots__ = ("ref", "signal")

    def __init__(self) -> None:
        self.ref: pykka.ActorRef[Any] | None = None
        self.signal: Callable[[], bool] = _gone
        """Wake the actor for its queued notices (a hosted actor's ``signal``)."""

    def tell(self, message: Any) -> bool:
        ref = self.ref
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True


# -- told to the scheduler -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wake:
    """Look for work to start (an executor was added, the system's settings changed)."""


@dataclass(frozen=True, slots=True)
class Registered:
    """A task was added to the store."""

    task_id: str


@dataclass(frozen=True, slots=True)
class Settled:
    """The task left WAITING, PENDING or RUNNING in the store (a cancel, a timeout): wake
    or fail its dependents, or arm its retry."""

    task_id: str


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt's work returned: its slot is free; ``settle``: its task also changed
    in a way its dependents or its retry must hear of."""

    attempt: Attempt
    settle: bool


@dataclass(frozen=True, slots=True)
class Waiting:
    """A running attempt waits for other tasks (``True``): its slot is free meanwhile; or
    it stops waiting (``False``) and takes a slot again (even past the limit, for the
    moment: it is running already)."""

    attempt: Attempt
    waiting: bool


@dataclass(frozen=True, slots=True)
class RetryDue:
    """The retry delay after ``attempt`` has passed."""

    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DelayDue:
    """A delayed task's ``not_before`` has come (or its timer was capped: look again)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class LimitsDue:
    """Look again at the keys held back by their limits: a rate's token is due, or the
    limits changed (``TaskManager.limit``)."""


Notice = Registered | Settled | Finished | RetryDue | Waiting | DelayDue | LimitsDue


class Notices:
    """The scheduler's queue for the task system's own notices: a burst is one wake-up.

    The first post of a burst signals the scheduler (a wake-up without an envelope); the
    rest only queue (:class:`actors.runtime.sync.Burst`). The queue is the scheduler's (it alone
    takes from it) and outlives a crash of it: its next incarnation drains what is left
    after rebuilding.
    """

    __slots__ = ("_burst", "address")

    def __init__(self, address: Address) -> None:
        self.address = address
        self._burst: Burst[Notice] = Burst()

    def post(self, notice: Notice) -> None:
        if self._burst.put(notice) and not self.address.signal():
            self._burst.wake_failed()  # the scheduler is down: its next incarnation drains us

    def take(self) -> list[Notice]:
        """Every queued notice, oldest first; the next post signals again."""
        return self._burst.take()


# -- told to an executor actor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskActorFailed:
    """A task actor (not its task's function) failed: its supervisor, the executor actor,
    ends the attempt and gives its slot back."""

    attempt: Attempt
    error: BaseException | None
