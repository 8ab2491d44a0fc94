"""Event fan-out: the task events of :mod:`actors.messages`, told to subscribed actors."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pykka

from actors.core import messages
from supervision._log import get_logger

__all__ = ["EventBus", "Subscription"]

_log = get_logger("actors")


@dataclass(frozen=True, slots=True)
class Subscription:
    ref: pykka.ActorRef[Any]
    task_ids: frozenset[str] | None


class EventBus:
    """The subscribers of one system and the events told to them.

    ``emit`` runs on whichever thread changed the task (it only tells: it never waits).
    The subscription list is replaced, never changed in place, so ``emit`` reads it
    without a lock; subscribing and dropping take a small lock of their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.subscriptions: tuple[Subscription, ...] = ()
        """Replaced, never changed in place: read it without the lock."""

    def wants(self, task_id: str) -> bool:
        """Whether any subscriber is told about ``task_id``: callers build an event only
        then (a page watching fifty tasks costs nothing for the other thousands)."""
        for sub in self.subscriptions:  # noqa: SIM110 - no generator per event: a hot path
            if sub.task_ids is None or task_id in sub.task_ids:
                return True
        return False

    def subscribe(self, subscription: Subscription) -> None:
        with self._lock:
            kept = tuple(s for s in self.subscriptions if s.ref != subscription.ref)
            self.subscriptions = (*kept, subscription)

    def unsubscribe(self, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self.subscriptions = tuple(s for s in self.subscriptions if s.ref != ref)

    def emit(self, event: messages.TaskEvent) -> None:
        subscriptions = self.subscriptions
        if not subscriptions:
            return
        for sub in subscriptions:
            if sub.task_ids is None or event.task_id in sub.task_ids:
                try:
                    sub.ref.tell(event)
                except pykka.ActorDeadError:
                    # A restarted subscriber is a new actor with a new ref: it subscribes
                    # again from its on_start (see Subscribe).
                    _log.info("task.subscriber_dropped", subscriber=str(sub.ref), reason="dead")
                    self.unsubscribe(sub.ref)
                except Exception as error:  # noqa: BLE001 - a subscriber never breaks a task
                    _log.warning(
                        "task.subscriber_failed", subscriber=str(sub.ref), error=repr(error)
                    )
                    self.unsubscribe(sub.ref)
