"""Per-exception decisions (Akka's onFailure[E]): RESTART, STOP, ESCALATE, RESUME."""

from __future__ import annotations

import pickle
import queue
from typing import Any

import pykka
import pytest

from supervision import (
    ChildFailureEscalated,
    ChildSpec,
    Directive,
    ExitReason,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorSpec,
)
from tests.supervision.conftest import WAIT, Journal, wait_exit


class Counter(pykka.ThreadingActor):
    """Counts; a told ("raise", kind) raises that kind of error."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.count = 0

    def on_start(self) -> None:
        self.journal.put("start")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "raise":
            raise message[1]("on purpose")
        self.count += 1
        return self.count


def by_type(error: BaseException) -> Directive:
    if isinstance(error, ValueError):
        return Directive.RESUME
    if isinstance(error, KeyError):
        return Directive.STOP
    if isinstance(error, LookupError):
        return Directive.ESCALATE
    return Directive.RESTART


def counter(journal: Journal, decider: Any = by_type) -> pykka.ActorRef[Supervisor]:
    spec = SupervisorSpec(children=[ChildSpec("c", Counter, args=(journal,), decider=decider)])
    sup = Supervisor.start(spec, name="sup")
    assert journal.next() == [("start",)]
    return sup


def child_of(sup: pykka.ActorRef[Supervisor]) -> Any:
    return sup.proxy().which_children().get(timeout=WAIT)[0].ref


def test_resume_keeps_the_actor_and_its_state(journal: Journal) -> None:
    sup = counter(journal)
    ref = child_of(sup)
    assert ref.ask("one", timeout=WAIT) == 1
    ref.tell(("raise", ValueError))  # lost; the actor goes on
    assert ref.ask("two", timeout=WAIT) == 2
    assert child_of(sup) is ref
    assert journal.empty()  # no restart
    sup.stop()


def test_restart_applies_the_strategy(journal: Journal) -> None:
    sup = counter(journal)
    ref = child_of(sup)
    ref.ask("one", timeout=WAIT)
    ref.tell(("raise", RuntimeError))
    assert journal.next() == [("start",)]
    assert child_of(sup).ask("again", timeout=WAIT) == 1  # fresh state
    sup.stop()


def test_stop_ends_even_a_permanent_child_for_good(journal: Journal) -> None:
    sup = counter(journal)
    ref = child_of(sup)
    ref.tell(("raise", KeyError))
    assert wait_exit(ref).reason is ExitReason.FAILED
    info = sup.proxy().which_children().get(timeout=WAIT)[0]
    assert (info.id, info.ref) == ("c", None)
    assert journal.empty()
    assert sup.proxy().restart_child("c").get(timeout=WAIT).is_alive()  # the spec stays
    sup.stop()


def test_escalate_fails_the_supervisor(journal: Journal) -> None:
    escalated: queue.Queue[RestartIntensityExceeded] = queue.Queue()
    spec = SupervisorSpec(children=[ChildSpec("c", Counter, args=(journal,), decider=by_type)])
    sup = Supervisor.start(spec, name="sup", on_escalate=escalated.put)
    journal.next()
    child_of(sup).tell(("raise", IndexError))
    error = escalated.get(timeout=WAIT)
    assert isinstance(error, ChildFailureEscalated)
    assert (error.child_id, type(error.error)) == ("c", IndexError)
    assert "supervisor sup escalated the failure of child 'c'" in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses processes too
    ended = wait_exit(sup)
    assert ended.reason is ExitReason.FAILED
    assert ended.error is error


def test_escalate_reaches_the_parent_which_restarts_the_subtree(journal: Journal) -> None:
    inner = SupervisorSpec(children=[ChildSpec("c", Counter, args=(journal,), decider=by_type)])
    root = Supervisor.start(SupervisorSpec(children=[ChildSpec("inner", inner)]))
    journal.next()
    inner_ref = child_of(root)
    child_of(inner_ref).tell(("raise", IndexError))
    assert isinstance(wait_exit(inner_ref).error, ChildFailureEscalated)
    assert journal.next() == [("start",)]  # the parent restarted the inner supervisor
    root.stop()


def test_a_decider_that_fails_means_restart(
    journal: Journal, log_events: list[dict[str, Any]]
) -> None:
    def broken(error: BaseException) -> Directive:
        raise RuntimeError("decider bug")

    sup = counter(journal, broken)
    child_of(sup).tell(("raise", ValueError))
    assert journal.next() == [("start",)]
    assert "monitor.decider_failed" in [e["event"] for e in log_events]
    sup.stop()


def test_a_failing_start_is_not_resumed(journal: Journal) -> None:
    class BadStart(Counter):
        def on_start(self) -> None:
            raise ValueError("cannot start")

    spec = SupervisorSpec(children=[ChildSpec("c", BadStart, args=(journal,), decider=by_type)])
    with pytest.raises(Exception, match="cannot start"):
        Supervisor.start(spec)


def test_a_decider_must_be_callable() -> None:
    with pytest.raises(TypeError, match="ChildSpec 'c': decider must be callable, got 'no'"):
        ChildSpec("c", Counter, decider="no")  # type: ignore[arg-type]
