"""Messages between the task system's own actors, and stable addresses for restartable ones."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors._attempt import Attempt

__all__ = [
    "Address",
    "Finished",
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


Notice = Registered | Settled | Finished | RetryDue | Waiting


class Notices:
    """The scheduler's queue for the task system's own notices: a burst is one wake-up.

    ``post`` appends a notice and signals the scheduler only when no signal is on its way
    already, so a burst of registrations or finished attempts costs one wake-up, not one
    each. The queue is the scheduler's (it alone takes from it) and outlives a crash of
    it: its next incarnation drains what is left after rebuilding.

    No lock on the common path: every thread that finishes an attempt posts here, and a
    lock they all take falls into a convoy under the GIL (the woken waiter owns the lock
    but not the GIL). ``deque.append`` and ``popleft`` are atomic; the order that makes it
    safe: ``take`` clears ``_pending`` *before* it empties the queue, so a notice appended
    after the emptying finds ``_pending`` False and signals again (at worst one signal too
    many, which drains nothing).
    """

    __slots__ = ("_items", "_lock", "_pending", "address")

    def __init__(self, address: Address) -> None:
        self.address = address
        self._items: deque[Notice] = deque()
        self._lock = threading.Lock()  # only to decide who signals
        self._pending = False

    def post(self, notice: Notice) -> None:
        self._items.append(notice)
        if self._pending:
            return  # a signal is on its way: its drain takes this notice too
        with self._lock:
            first, self._pending = not self._pending, True
        if first and not self.address.signal():
            self._pending = False  # the scheduler is down: its next incarnation drains us

    def take(self) -> list[Notice]:
        """Every queued notice, oldest first; the next post signals again."""
        self._pending = False
        items, popleft = [], self._items.popleft
        try:
            while True:
                items.append(popleft())
        except IndexError:
            return items


# -- told to an executor actor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskActorFailed:
    """A task actor (not its task's function) failed: its supervisor, the executor actor,
    ends the attempt and gives its slot back."""

    attempt: Attempt
    error: BaseException | None
