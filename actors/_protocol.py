"""Messages between the task system's own actors, and stable addresses for restartable ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka

from actors._attempt import Attempt

__all__ = [
    "Address",
    "Finished",
    "Registered",
    "RetryDue",
    "Settled",
    "TaskActorFailed",
    "Wake",
]


class Address:
    """Where an actor that may be restarted can be reached: its current ref, or none.

    A restarted actor puts its new ref here in on_start. A tell to an actor that is
    down is dropped (and False returned): everything the task system tells the
    scheduler is also in the task store, and its next incarnation rebuilds from there.
    """

    __slots__ = ("ref",)

    def __init__(self) -> None:
        self.ref: pykka.ActorRef[Any] | None = None

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
class RetryDue:
    """The retry delay after ``attempt`` has passed."""

    task_id: str
    attempt: int


# -- told to an executor actor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskActorFailed:
    """A task actor (not its task's function) failed: its supervisor, the executor actor,
    ends the attempt and gives its slot back."""

    attempt: Attempt
    error: BaseException | None
