"""Messages between the task system's own actors, and stable addresses for restartable ones."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pykka

from actors._store import Attempt

__all__ = [
    "Address",
    "AttemptReturned",
    "Registered",
    "RetryDue",
    "RunAttempt",
    "Settled",
    "Wake",
]


class Address:
    """Where an actor that may be restarted can be reached: its current ref, or none.

    A restarted actor puts its new ref here in on_start. A tell to an actor that is
    down is dropped (and False returned): everything the task system sends is also in
    the task store, so the restarted actor learns it when it rebuilds from the store.
    """

    __slots__ = ("_lock", "ref")

    def __init__(self) -> None:
        self.ref: pykka.ActorRef[Any] | None = None
        self._lock = threading.Lock()

    def tell(self, message: Any) -> bool:
        ref = self.ref
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Wake:
    """Look for work to start (the store changed: started, slot freed, settings)."""


@dataclass(frozen=True, slots=True)
class Registered:
    task_id: str


@dataclass(frozen=True, slots=True)
class Settled:
    """The task left RUNNING/WAITING/PENDING in the store (ended, or awaits a retry)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class RetryDue:
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RunAttempt:
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class AttemptReturned:
    """The attempt's work returned and its slot is free; ``settled``: it also ended it."""

    task_id: str
    settled: bool
