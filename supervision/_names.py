"""Names for supervised children: ``whereis`` and ``named`` references that outlive restarts.

A supervisor registers a named child while it runs. A :class:`NamedRef` reaches whichever
incarnation runs now; while the child restarts (or waits out its backoff) the name keeps a
buffer, as an Akka mailbox outlives a restart: the messages queued behind the failing one
and those sent meanwhile reach the next incarnation, in order.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import pykka

# pykka's envelope and stop marker are private; this module is their one user here
# (tests/supervision/test_names.py::test_pykka_private_names_still_exist pins them).
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from supervision._log import get_logger
from supervision._validate import check_seconds, check_text

__all__ = ["NameEntry", "NamedRef", "RestartBufferFull", "claim", "named", "whereis"]

_log = get_logger("supervision.names")


class RestartBufferFull(pykka.ActorDeadError):
    """A named child is restarting and ``restart_buffer`` messages sent since wait for it.

    (Those that were already in its inbox when it stopped are kept too, and not counted.)
    """


class NameEntry:
    """One registered name: the running incarnation, or the messages waiting for the next.

    Every change happens under ``_cond``: senders (``send``), the supervisor (``attach``,
    ``release``) and the child's own thread as its loop ends (``take_leftovers``).
    """

    __slots__ = (
        "_carried",
        "_cond",
        "_stash",
        "actor",
        "bound",
        "name",
        "owner",
        "ref",
        "released",
    )

    def __init__(self, name: str, owner: str, bound: int) -> None:
        self.name = name
        self.owner = owner
        self.bound = bound
        self.ref: pykka.ActorRef[Any] | None = None
        self.actor: pykka.Actor | None = None  # the latest incarnation, for proxies
        self.released = False
        self._stash: deque[Envelope[Any]] = deque()
        self._carried = 0  # of the stash, those moved from a stopped inbox (not bounded)
        # Reentrant: an actor hosted inline runs its handler (and, if it fails, its
        # take_leftovers) inside the put of send or attach
        # (test_an_inline_hosted_named_actor_fails_inside_a_send_without_a_deadlock).
        self._cond = threading.Condition(threading.RLock())

    def send(self, message: Any, reply_to: pykka.Future[Any] | None) -> None:
        """Put a message in the running incarnation's inbox, else in the buffer."""
        envelope = Envelope(message, reply_to=reply_to)
        with self._cond:
            if self.released:
                raise pykka.ActorDeadError(f"no actor is named {self.name!r}")
            ref = self.ref
            # Under the lock: take_leftovers, on the child's thread, moves whatever is
            # in the inbox once the actor has stopped (test_messages_survive_restarts_in_order).
            if ref is not None and ref.is_alive():
                ref.actor_inbox.put(envelope)
                return
            if len(self._stash) - self._carried >= self.bound:
                raise RestartBufferFull(
                    f"named child {self.name!r} is restarting and already holds {self.bound} "
                    "messages (ChildSpec.restart_buffer); this one was not delivered"
                )
            self._stash.append(envelope)

    def attach(self, ref: pykka.ActorRef[Any]) -> None:
        """A new incarnation runs: hand it the buffered messages, then route to it."""
        with self._cond:
            pending, self._stash = self._stash, deque()
            self._carried = 0
            self.ref = ref
            self.actor = ref._actor_weakref()
            while pending:
                if self.ref is not ref:
                    # It failed on this very thread while taking them (hosted inline): its
                    # leftovers are in the buffer already; the rest follow them.
                    self._stash.extend(pending)
                    self._carried = len(self._stash)
                    break
                ref.actor_inbox.put(pending.popleft())
            self._cond.notify_all()

    def take_leftovers(self, ref: pykka.ActorRef[Any]) -> None:
        """On the child's thread as its loop ends: keep its unhandled messages for the next."""
        with self._cond:
            if self.released or self.ref is not ref:
                return
            self.ref = None
            inbox = ref.actor_inbox
            kept: list[Envelope[Any]] = []
            while not inbox.empty():
                envelope = inbox.get()
                if isinstance(envelope.message, _ActorStop):
                    if envelope.reply_to is not None:
                        envelope.reply_to.set(None)
                    continue
                kept.append(envelope)
            # What was in the inbox was sent before anything buffered since it stopped.
            self._stash.extendleft(reversed(kept))
            self._carried += len(kept)

    def release(self) -> None:
        """The child will not run again under this name: free it, fail what waits."""
        with self._cond:
            if self.released:
                return
            self.released = True
            self.ref = self.actor = None
            dropped, self._stash = list(self._stash), deque()
            self._cond.notify_all()
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        if dropped:
            _log.warning("names.messages_dropped", child_name=self.name, count=len(dropped))
        for envelope in dropped:
            if envelope.reply_to is not None:
                error = pykka.ActorDeadError(f"{self.name!r} stopped before handling the message")
                envelope.reply_to.set_exception(exc_info=(type(error), error, None))

    def wait_running(self, timeout: float) -> pykka.ActorRef[Any] | None:
        with self._cond:
            self._cond.wait_for(lambda: self.ref is not None or self.released, timeout)
            return self.ref


_registry: dict[str, NameEntry] = {}
_registry_lock = threading.Lock()


def claim(name: str, owner: str, bound: int) -> NameEntry:
    """Take ``name`` for ``owner`` (a supervisor's child); ValueError naming both if taken."""
    with _registry_lock:
        held = _registry.get(name)
        if held is not None and not held.released:
            raise ValueError(
                f"name {name!r} is taken by {held.owner}; {owner} cannot be registered under it"
            )
        entry = _registry[name] = NameEntry(name, owner, bound)
        return entry


def whereis(name: str) -> pykka.ActorRef[Any] | None:
    """The ref of the child running under ``name`` now, or None (also while it restarts)."""
    check_text("name", name, allow_empty=False)
    entry = _registry.get(name)
    ref = entry.ref if entry is not None else None
    return ref if ref is not None and ref.is_alive() else None


class NamedRef:
    """A reference to whatever incarnation of a named child runs: ``tell``, ``ask``, ``proxy``.

    Messages sent while the child restarts wait (up to its ``restart_buffer``) and reach the
    next incarnation in order; a name nobody holds raises ``pykka.ActorDeadError``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = check_text("name", name, allow_empty=False)

    def _entry(self) -> NameEntry:
        entry = _registry.get(self.name)
        if entry is None:
            raise pykka.ActorDeadError(f"no actor is named {self.name!r}")
        return entry

    def tell(self, message: Any) -> None:
        """Send ``message`` to the current incarnation (or the next one, if it restarts)."""
        self._entry().send(message, None)

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send ``message`` and return the reply (``block=False``: a future of it)."""
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        self._entry().send(message, future)
        return future.get(timeout=timeout) if block else future

    def is_alive(self) -> bool:
        """Whether an incarnation runs under the name now."""
        return whereis(self.name) is not None

    def _actor_weakref(self) -> pykka.Actor | None:
        # pykka's ActorProxy reads this to introspect the actor (traversable attributes).
        entry = _registry.get(self.name)
        return entry.actor if entry is not None else None

    def proxy(self, timeout: float = 5.0) -> pykka.ActorProxy[Any]:
        """A pykka proxy whose calls reach the current incarnation.

        Waits up to ``timeout`` seconds for one to run (the attributes are read from it).
        """
        timeout = check_seconds("timeout", timeout)
        entry = self._entry()
        ref = entry.wait_running(timeout)
        actor = entry.actor
        if ref is None or actor is None:
            raise pykka.ActorDeadError(f"no actor runs under the name {self.name!r}")
        proxy: pykka.ActorProxy[Any] = pykka.ActorProxy(actor_ref=ref)
        # The proxy reads attributes from this incarnation and sends through the name.
        object.__setattr__(proxy, "actor_ref", self)
        return proxy

    def __repr__(self) -> str:
        return f"<NamedRef {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("NamedRef", self.name))


def named(name: str) -> NamedRef:
    """A reference to the child registered as ``name`` that reaches each new incarnation."""
    return NamedRef(name)
