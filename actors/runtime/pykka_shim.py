"""The private parts of pykka that hosted actors rely on, all in this one module.

Nothing else imports a private pykka name; ``tests/actors/test_pykka_shim.py`` checks each
against the installed pykka.
"""

from __future__ import annotations

from pykka._envelope import Envelope
from pykka.messages import _ActorStop as ActorStop

__all__ = ["ACTOR_INIT_ATTRIBUTES", "ActorStop", "Envelope"]

ACTOR_INIT_ATTRIBUTES = frozenset({"actor_urn", "actor_inbox", "actor_stopped", "_actor_ref"})
"""What pykka's ``Actor.__init__`` sets on an actor, and all it sets: ``HostedActor``'s
own ``__init__`` sets the same attributes, more cheaply (see its docstring)."""
