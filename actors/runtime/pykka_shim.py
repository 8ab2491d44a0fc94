"""The private parts of pykka that hosted actors rely on, all in this one module.

pykka's public API names neither the envelope a message travels in nor the message that
``ActorRef.stop`` sends, yet a mailbox that answers what is left in it after a stop (as
pykka's own ``Actor._actor_loop_teardown`` does) needs both. Nothing else in this package
imports a private pykka name. ``tests/actors/test_pykka_shim.py`` checks every name and
fact here against the installed pykka, so that a pykka release within the range
``setup.cfg`` allows that changes one of them fails that test first, with a clear message,
rather than a hosted actor misbehaving.
"""

from __future__ import annotations

from pykka._envelope import Envelope
from pykka.messages import _ActorStop as ActorStop

__all__ = ["ACTOR_INIT_ATTRIBUTES", "ActorStop", "Envelope"]

ACTOR_INIT_ATTRIBUTES = frozenset({"actor_urn", "actor_inbox", "actor_stopped", "_actor_ref"})
"""What pykka's ``Actor.__init__`` sets on an actor, and all it sets: ``HostedActor``'s
own ``__init__`` sets the same attributes, more cheaply (see its docstring)."""
