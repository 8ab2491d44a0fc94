"""Messages between the task system's own actors, and stable addresses for restartable ones."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import pykka

__all__ = [
    "Address",
    "Drain",
    "Notices",
    "Registered",
    "RetryDue",
    "Settled",
    "Wake",
]


class Address:
    """Where an actor that may be restarted can be reached: its current ref, or none.

    A restarted actor puts its new ref here in on_start. A tell to an actor that is
    down is dropped (and False returned): everything the task system sends is also in
    the task store, so the restarted actor learns it when it rebuilds from the store.
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
class Drain:
    """Notices are waiting in the scheduler's Notices."""


Notice = Registered | Settled


class Notices:
    """What the task system tells the scheduler, queued outside it and delivered in batches.

    ``post`` appends a notice and tells the scheduler ``Drain`` only when none is already
    on its way, so a burst of registrations or cancellations costs one message and
    one wake-up of the scheduler's thread. The queue outlives a crash of the scheduler:
    its next incarnation drains it after rebuilding from the store.
    """

    __slots__ = ("_items", "_lock", "_pending", "address")

    def __init__(self, address: Address) -> None:
        self.address = address
        self._items: deque[Notice] = deque()
        self._lock = threading.Lock()
        self._pending = False

    def post(self, notice: Notice) -> None:
        with self._lock:
            self._items.append(notice)
            if self._pending:
                return
            self._pending = True
        if not self.address.tell(Drain()):
            with self._lock:  # the scheduler is down: its next incarnation drains us
                self._pending = False

    def take(self) -> list[Notice]:
        """Every queued notice, oldest first; the next post wakes the scheduler again."""
        with self._lock:
            self._pending = False
            items = list(self._items)
            self._items.clear()
        return items
