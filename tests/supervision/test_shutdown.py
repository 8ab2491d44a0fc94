"""How a supervisor stops a child: a timeout then a kill, brutal_kill, infinity (OTP's
sup_stop_timeout, sup_stop_brutal_kill and sup_stop_infinity)."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import ChildSpec, Shutdown, Supervisor, SupervisorSpec
from tests.supervision.conftest import WAIT, Journal, Worker, wait_exit


class Busy(Worker):
    """A worker whose "block" holds it until the gate opens; on_stop may wait too."""

    def __init__(self, journal: Journal, name: str, gate: threading.Event, slow_stop: bool) -> None:
        super().__init__(journal, name)
        self.gate = gate
        self.slow_stop = slow_stop

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.journal.put("blocked", self.name)
            self.gate.wait(WAIT)
            self.journal.put("unblocked", self.name)
            return None
        return super().on_receive(message)

    def on_stop(self) -> None:
        if self.slow_stop:
            self.gate.wait(WAIT)
        super().on_stop()


def busy_child(
    journal: Journal, gate: threading.Event, shutdown: Any, *, slow_stop: bool = False
) -> pykka.ActorRef[Supervisor]:
    spec = ChildSpec("w", Busy, args=(journal, "w", gate, slow_stop), shutdown=shutdown)
    sup = Supervisor.start(SupervisorSpec(children=[spec]))
    assert journal.next() == [("start", "w")]
    return sup


def test_a_child_that_overruns_its_shutdown_time_is_killed(
    journal: Journal, log_events: list[dict[str, Any]]
) -> None:
    gate = threading.Event()
    sup = busy_child(journal, gate, 0.05)
    child = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    child.tell("block")
    child.tell("queued")
    assert journal.next() == [("blocked", "w")]
    sup.stop()  # returns after the shutdown time, the handler still blocked
    assert not child.is_alive()
    assert "supervisor.shutdown_timeout" in [e["event"] for e in log_events]
    gate.set()
    assert journal.next() == [("unblocked", "w")]
    wait_exit(child)
    assert journal.empty()  # neither the queued message nor on_stop ran


def test_brutal_kill_does_not_wait_at_all(journal: Journal) -> None:
    gate = threading.Event()
    sup = busy_child(journal, gate, Shutdown.BRUTAL_KILL)
    child = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    child.tell("block")
    assert journal.next() == [("blocked", "w")]
    sup.stop()  # with a timeout this would wait for the gate: it is never opened here
    assert not child.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        child.tell("too late")
    gate.set()
    assert journal.next() == [("unblocked", "w")]


def test_brutal_kill_of_an_idle_child_skips_its_on_stop(journal: Journal) -> None:
    sup = busy_child(journal, threading.Event(), Shutdown.BRUTAL_KILL)
    child = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    sup.stop()
    wait_exit(child)
    assert journal.empty()


def test_infinity_waits_as_long_as_the_child_takes(journal: Journal) -> None:
    gate = threading.Event()
    sup = busy_child(journal, gate, Shutdown.INFINITY, slow_stop=True)
    stopped = sup.stop(block=False)
    with pytest.raises(pykka.Timeout):
        stopped.get(timeout=0.2)  # longer than a timeout child would get here: still waiting
    gate.set()
    stopped.get(timeout=WAIT)
    assert journal.next() == [("stop", "w")]


def test_a_timeout_child_that_stops_in_time_runs_its_on_stop(journal: Journal) -> None:
    sup = busy_child(journal, threading.Event(), 5.0)
    sup.stop()
    assert journal.next() == [("stop", "w")]


def test_shutdown_defaults_and_the_old_name() -> None:
    assert ChildSpec("w", Worker).shutdown == 5.0
    assert ChildSpec("s", SupervisorSpec()).shutdown is Shutdown.INFINITY
    assert ChildSpec("w", Worker, shutdown_timeout=2).shutdown == 2.0
    assert ChildSpec("w", Worker, shutdown=Shutdown.BRUTAL_KILL).shutdown is Shutdown.BRUTAL_KILL
    with pytest.raises(ValueError, match=r"shutdown .*and shutdown_timeout .*disagree"):
        ChildSpec("w", Worker, shutdown=1, shutdown_timeout=2)
    with pytest.raises(ValueError, match="ChildSpec 'w': shutdown must be a finite number"):
        ChildSpec("w", Worker, shutdown=-1)
    with pytest.raises(TypeError, match="ChildSpec 'w': shutdown must be a number, got 'kill'"):
        ChildSpec("w", Worker, shutdown="kill")  # type: ignore[arg-type]


def test_a_killed_supervisor_stops_its_children(journal: Journal) -> None:
    inner = SupervisorSpec(children=[ChildSpec("w", Worker, args=(journal, "w"))])
    root = Supervisor.start(
        SupervisorSpec(children=[ChildSpec("inner", inner, shutdown=Shutdown.BRUTAL_KILL)])
    )
    journal.next()
    inner_ref = root.proxy().which_children().get(timeout=WAIT)[0].ref
    root.stop()
    wait_exit(inner_ref)
    assert journal.next() == [("stop", "w")]
