"""Restart intensity and escalation through nested supervisors."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from supervision import (
    ChildSpec,
    ExitReason,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
)
from tests.supervision.conftest import WAIT, FakeClock, Journal, Worker, wait_exit


def crash(sup: Any, child_id: str) -> None:
    """Crash one running child of ``sup`` (a ref) and wait until it is gone."""
    ref = next(c.ref for c in sup.proxy().which_children().get(timeout=WAIT) if c.id == child_id)
    ref.tell("crash")
    wait_exit(ref)


def test_more_than_max_restarts_within_the_window_escalates(
    journal: Journal, log_events: list[dict[str, Any]]
) -> None:
    escalations: queue.Queue[RestartIntensityExceeded] = queue.Queue()
    spec = SupervisorSpec(
        max_restarts=2,
        within_seconds=10,
        children=[ChildSpec(n, Worker, args=(journal, n)) for n in ("a", "b")],
    )
    sup = Supervisor.start(spec, name="root", on_escalate=escalations.put, clock=FakeClock())
    journal.next(2)
    for _ in range(2):  # two restarts are allowed
        crash(sup, "a")
        assert journal.next() == [("start", "a")]
    crash(sup, "a")  # the third is one too many
    assert journal.next() == [("stop", "b")]  # the others are stopped in reverse order
    error = escalations.get(timeout=WAIT)
    assert (error.supervisor, error.max_restarts, error.within_seconds) == ("root", 2, 10)
    ended = wait_exit(sup)
    assert ended.reason is ExitReason.FAILED
    assert isinstance(ended.error, RestartIntensityExceeded)
    assert [e["event"] for e in log_events].count("supervisor.escalate") == 1


def test_restarts_outside_the_window_do_not_count(journal: Journal) -> None:
    clock = FakeClock()
    spec = SupervisorSpec(
        max_restarts=1, within_seconds=5, children=[ChildSpec("a", Worker, args=(journal, "a"))]
    )
    sup = Supervisor.start(spec, clock=clock)
    journal.next()
    for _ in range(4):
        crash(sup, "a")
        assert journal.next() == [("start", "a")]
        clock.advance(6)
    assert sup.is_alive()
    sup.stop()
    assert journal.next() == [("stop", "a")]


def test_max_restarts_zero_escalates_on_the_first_failure(journal: Journal) -> None:
    escalations: queue.Queue[RestartIntensityExceeded] = queue.Queue()
    spec = SupervisorSpec(max_restarts=0, children=[ChildSpec("a", Worker, args=(journal, "a"))])
    sup = Supervisor.start(spec, on_escalate=escalations.put)
    journal.next()
    crash(sup, "a")
    assert isinstance(escalations.get(timeout=WAIT), RestartIntensityExceeded)
    assert wait_exit(sup).reason is ExitReason.FAILED


def test_escalation_travels_two_levels_up(
    journal: Journal, log_events: list[dict[str, Any]]
) -> None:
    escalations: queue.Queue[RestartIntensityExceeded] = queue.Queue()
    leaf = SupervisorSpec(max_restarts=1, children=[ChildSpec("w", Worker, args=(journal, "w"))])
    mid = SupervisorSpec(max_restarts=0, children=[ChildSpec("leaf", leaf)])
    root = SupervisorSpec(
        max_restarts=0,
        children=[ChildSpec("sibling", Worker, args=(journal, "sibling")), ChildSpec("mid", mid)],
    )
    sup = Supervisor.start(root, name="root", on_escalate=escalations.put)
    assert journal.next(2) == [("start", "sibling"), ("start", "w")]
    mid_ref = next(c.ref for c in sup.proxy().which_children().get(timeout=WAIT) if c.id == "mid")
    leaf_ref = mid_ref.proxy().which_children().get(timeout=WAIT)[0].ref  # type: ignore[union-attr]
    worker = leaf_ref.proxy().which_children().get(timeout=WAIT)[0].ref  # type: ignore[union-attr]

    worker.tell("crash")  # restart 1 of 1: fine
    assert journal.next() == [("start", "w")]
    worker = leaf_ref.proxy().which_children().get(timeout=WAIT)[0].ref  # type: ignore[union-attr]
    worker.tell("crash")  # leaf gives up -> mid gives up -> root gives up
    error = escalations.get(timeout=WAIT)
    assert error.supervisor == "root"
    assert journal.next() == [("stop", "sibling")]
    assert wait_exit(sup).reason is ExitReason.FAILED
    escalated = [e["supervisor"] for e in log_events if e["event"] == "supervisor.escalate"]
    assert escalated == ["root/mid/leaf", "root/mid", "root"]


def test_a_parent_restarts_a_child_supervisor_that_gave_up(journal: Journal) -> None:
    inner = SupervisorSpec(max_restarts=0, children=[ChildSpec("w", Worker, args=(journal, "w"))])
    spec = SupervisorSpec(strategy=Strategy.ONE_FOR_ONE, children=[ChildSpec("inner", inner)])
    sup = Supervisor.start(spec)
    journal.next()
    inner_ref = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    assert inner_ref is not None
    worker = inner_ref.proxy().which_children().get(timeout=WAIT)[0].ref
    worker.tell("crash")
    assert wait_exit(inner_ref).reason is ExitReason.FAILED
    assert journal.next() == [("start", "w")]  # a new inner supervisor, a new worker
    new_inner = sup.proxy().which_children().get(timeout=WAIT)[0]
    assert new_inner.alive
    assert new_inner.ref is not inner_ref
    sup.stop()
    assert journal.next() == [("stop", "w")]


def test_restart_intensity_counts_restarts_of_all_children(journal: Journal) -> None:
    escalations: queue.Queue[RestartIntensityExceeded] = queue.Queue()
    spec = SupervisorSpec(
        max_restarts=1, children=[ChildSpec(n, Worker, args=(journal, n)) for n in ("a", "b")]
    )
    sup = Supervisor.start(spec, on_escalate=escalations.put, clock=FakeClock())
    journal.next(2)
    crash(sup, "a")
    assert journal.next() == [("start", "a")]
    crash(sup, "b")
    assert isinstance(escalations.get(timeout=WAIT), RestartIntensityExceeded)
    assert journal.next() == [("stop", "a")]
    assert wait_exit(sup).reason is ExitReason.FAILED
    with pytest.raises(queue.Empty):
        escalations.get_nowait()
