"""Links between any two pykka actors, and trapping exits (Erlang's ``link`` and ``trap_exit``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervision._log import get_logger
from supervision._monitor import ActorMonitor, ExitReason, Terminated, monitor

__all__ = ["Exited", "link", "unlink"]

_log = get_logger("supervision.links")


@dataclass(frozen=True, slots=True)
class Exited:
    """Told to an actor that traps exits (``trap_exits = True`` on its class) when a linked
    actor stops, whatever the reason."""

    ref: pykka.ActorRef[Any]
    reason: ExitReason
    error: BaseException | None = None


_Pair = frozenset[str]
_links: dict[_Pair, tuple[Callable[[], None], Callable[[], None]]] = {}
_links_lock = threading.Lock()


def _traps_exits(ref: pykka.ActorRef[Any]) -> bool:
    return getattr(ref.actor_class, "trap_exits", False) is True


def _on_exit_of(
    ended: pykka.ActorRef[Any], other: pykka.ActorRef[Any], other_mon: ActorMonitor
) -> Callable[[Terminated], None]:
    def signal(record: Terminated) -> None:
        # Runs on the ended actor's thread, as its loop ends.
        with _links_lock:
            _links.pop(frozenset((ended.actor_urn, other.actor_urn)), None)
        if _traps_exits(other):
            with contextlib.suppress(pykka.ActorDeadError):
                other.tell(Exited(ended, record.reason, record.error))
            return
        if record.reason is ExitReason.FAILED and other.is_alive():
            _log.warning(
                "links.exit_propagated",
                actor=str(other),
                linked=str(ended),
                error=repr(record.error),
            )
            other_mon.kill(record.error)

    return signal


def link(a: pykka.ActorRef[Any], b: pykka.ActorRef[Any]) -> None:
    """Link two actors: when one fails, the other is stopped, failed with the same error,
    unless it traps exits; then it is told ``Exited(ref, reason, error)`` (for any exit).

    Idempotent. Raises ``pykka.ActorDeadError`` if either actor has already stopped.
    """
    for ref in (a, b):
        if not isinstance(ref, pykka.ActorRef):
            raise TypeError(f"link takes two pykka ActorRefs, got {ref!r}")
    if a.actor_urn == b.actor_urn:
        raise ValueError(f"an actor cannot be linked to itself: {a}")
    mon_a, mon_b = monitor(a), monitor(b)
    for ref, mon in ((a, mon_a), (b, mon_b)):
        if mon is None or mon.terminated is not None:
            raise pykka.ActorDeadError(f"cannot link {ref}: it has stopped")
    assert mon_a is not None
    assert mon_b is not None
    pair = frozenset((a.actor_urn, b.actor_urn))
    with _links_lock:
        if pair in _links:
            return
        _links[pair] = (lambda: None, lambda: None)
    cancels = (
        mon_a.on_terminated(_on_exit_of(a, b, mon_b)),
        mon_b.on_terminated(_on_exit_of(b, a, mon_a)),
    )
    with _links_lock:
        if pair in _links:  # (an exit may have fired, and removed it, meanwhile)
            _links[pair] = cancels


def unlink(a: pykka.ActorRef[Any], b: pykka.ActorRef[Any]) -> None:
    """Remove the link between ``a`` and ``b``, if there is one."""
    with _links_lock:
        cancels = _links.pop(frozenset((a.actor_urn, b.actor_urn)), None)
    if cancels is not None:
        for cancel in cancels:
            cancel()
