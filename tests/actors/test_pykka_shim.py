"""The private pykka names and facts that actors.runtime.pykka_shim re-exports, checked against
the installed pykka: a pykka release (within setup.cfg's range) that changes one fails here
first, with the name of what changed, rather than in a hosted actor's behaviour."""

from __future__ import annotations

import inspect
import queue
import threading
import uuid
from importlib.metadata import version
from typing import Any

import pykka
import pytest

from actors import HostedActor, ThreadPoolDispatcher
from actors.runtime.pykka_shim import ACTOR_INIT_ATTRIBUTES, ActorStop, Envelope


class Plain(pykka.ThreadingActor):
    """Never started: only its construction and pykka's methods are looked at."""


class Hosted(HostedActor):
    pass


def test_the_installed_pykka_is_in_the_range_the_shim_was_checked_for() -> None:
    major = int(version("pykka").split(".")[0])
    assert major == 4, f"pykka {version('pykka')}: the shim was written for pykka 4"


def test_envelope_is_what_a_ref_puts_in_an_inbox() -> None:
    actor = Plain()
    actor.actor_ref.tell("told")
    asked = actor.actor_ref.ask("asked", block=False)
    inbox = actor.actor_inbox
    assert isinstance(inbox, queue.Queue)
    told, question = inbox.get_nowait(), inbox.get_nowait()
    assert isinstance(told, Envelope)
    assert (told.message, told.reply_to) == ("told", None)
    assert isinstance(question, Envelope)
    assert (question.message, question.reply_to) == ("asked", asked)
    assert list(inspect.signature(Envelope).parameters) == ["message", "reply_to"]
    made = Envelope("m")
    assert (made.message, made.reply_to) == ("m", None)


def test_actor_stop_is_what_ref_stop_sends_and_what_stops_an_actor() -> None:
    actor = Plain()
    stopping = actor.actor_ref.stop(block=False)
    envelope = actor.actor_inbox.get_nowait()  # type: ignore[attr-defined]
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.message, ActorStop)
    assert envelope.reply_to is not None
    # pykka answers a stop that finds its actor stopped with None: True for the caller.
    envelope.reply_to.set(None)
    assert stopping.get(timeout=0) is True
    # _handle_receive routes it to _stop, which HostedActor overrides.
    stops: list[bool] = []
    actor._stop = lambda: stops.append(True)  # type: ignore[method-assign]
    actor._handle_receive(ActorStop())
    assert stops == [True]


def test_pykka_actor_init_sets_exactly_the_attributes_hosted_actors_set() -> None:
    assert set(vars(Plain())) == ACTOR_INIT_ATTRIBUTES
    hosted = Hosted()
    assert set(vars(hosted)) >= ACTOR_INIT_ATTRIBUTES
    assert uuid.UUID(hosted.actor_urn).urn == hosted.actor_urn
    assert isinstance(hosted.actor_inbox, type(Hosted._create_actor_inbox()))
    assert isinstance(hosted.actor_stopped, threading.Event)
    assert not hosted.actor_stopped.is_set()
    assert isinstance(hosted.actor_ref, pykka.ActorRef)
    assert hosted.actor_ref.actor_urn == hosted.actor_urn
    assert hosted.actor_ref.actor_inbox is hosted.actor_inbox
    assert hosted.actor_ref.actor_stopped is hosted.actor_stopped


class Recorded(pykka.ThreadingActor):
    """Records what pykka's _stop does, in order."""

    def __init__(self, steps: list[str], fail: bool) -> None:
        super().__init__()
        self.steps = steps
        self.fail = fail

    def on_stop(self) -> None:
        self.steps.append(f"on_stop, stopped={self.actor_stopped.is_set()}")
        if self.fail:
            raise RuntimeError("on_stop failed")

    def _handle_failure(self, *exc_info: Any) -> None:
        self.steps.append(f"_handle_failure {exc_info[1]!r}")


@pytest.mark.parametrize("fail", [False, True], ids=["on_stop-returns", "on_stop-raises"])
def test_pykka_stop_does_what_the_unregistered_hosted_stop_repeats(
    fail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HostedActor._stop for a class that is not `registered` is pykka's _stop minus the
    # registry: this pins pykka's steps.
    steps: list[str] = []
    monkeypatch.setattr(
        pykka.ActorRegistry, "unregister", classmethod(lambda cls, ref: steps.append("unregister"))
    )
    Recorded(steps, fail)._stop()
    expected = ["unregister", "on_stop, stopped=True"]
    if fail:
        expected.append("_handle_failure RuntimeError('on_stop failed')")
    assert steps == expected


def test_the_hooks_hosted_actors_override_or_reuse_are_pykkas() -> None:
    for name in (
        "_create_actor_inbox",
        "_create_future",
        "_start_actor_loop",
        "_actor_loop_setup",
        "_actor_loop_teardown",
        "_handle_receive",
        "_handle_failure",
        "_stop",
        "on_start",
        "on_stop",
        "on_failure",
        "on_receive",
    ):
        assert callable(getattr(pykka.Actor, name, None)), name
    assert list(inspect.signature(pykka.Actor._handle_failure).parameters) == [
        "self",
        "exception_type",
        "exception_value",
        "traceback",
    ]
    # Reused as they are, not copied:
    for name in ("_actor_loop_setup", "_actor_loop_teardown", "_handle_receive"):
        assert getattr(HostedActor, name) is getattr(pykka.Actor, name), name


def test_pykka_teardown_answers_what_is_left_in_a_hosted_mailbox() -> None:
    # _actor_loop_teardown drains the inbox through get()/empty(): our mailbox has both.
    pool = ThreadPoolDispatcher(1)
    try:
        actor = Hosted.start_on(pool)._actor_weakref()
        assert actor is not None
        ref = actor.actor_ref
        ref.stop()
        told, asked, stop = (
            Envelope("t"),
            Envelope("a", pykka.ThreadingFuture()),
            Envelope(ActorStop(), pykka.ThreadingFuture()),
        )
        for envelope in (told, asked, stop):
            actor._mailbox._items.append(envelope)
        pykka.Actor._actor_loop_teardown(actor)
        assert actor._mailbox.empty()
        assert asked.reply_to is not None
        with pytest.raises(pykka.ActorDeadError):
            asked.reply_to.get(timeout=0)
        assert stop.reply_to is not None
        assert stop.reply_to.get(timeout=0) is None
    finally:
        pool.shutdown()
