"""Significant children and auto_shutdown, as OTP's supervisor_SUITE checks them
(significant_temporary, significant_transient, significant_bystander, significant_escalation)."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from supervision import (
    AutoShutdown,
    ChildSpec,
    ExitReason,
    Restart,
    Strategy,
    Supervisor,
    SupervisorSpec,
)
from tests.supervision.conftest import WAIT, Journal, Worker, wait_exit

ANY, ALL = AutoShutdown.ANY_SIGNIFICANT, AutoShutdown.ALL_SIGNIFICANT


def child(journal: Journal, name: str, restart: Restart, *, significant: bool = True) -> ChildSpec:
    return ChildSpec(name, Worker, args=(journal, name), restart=restart, significant=significant)


def start(journal: Journal, mode: AutoShutdown, *children: ChildSpec) -> Any:
    sup = Supervisor.start(SupervisorSpec(auto_shutdown=mode, children=children))
    journal.next(len(children))
    return sup


def ref_of(sup: Any, child_id: str) -> pykka.ActorRef[Any]:
    infos = sup.proxy().which_children().get(timeout=WAIT)
    ref: pykka.ActorRef[Any] = next(i.ref for i in infos if i.id == child_id)
    return ref


@pytest.mark.parametrize("how", ["exit", "crash"])
def test_any_significant_temporary_child_ending_stops_the_supervisor(
    journal: Journal, how: str
) -> None:
    sup = start(
        journal,
        ANY,
        child(journal, "other", Restart.PERMANENT, significant=False),
        child(journal, "t", Restart.TEMPORARY),
    )
    ref_of(sup, "t").tell(how)
    ended = wait_exit(sup)
    assert ended.reason is ExitReason.NORMAL  # the supervisor stops normally
    left = []
    while not journal.empty():
        left += journal.next()
    assert ("stop", "other") in left  # the other children were stopped


def test_any_significant_transient_child_is_restarted_after_a_failure(journal: Journal) -> None:
    sup = start(journal, ANY, child(journal, "t", Restart.TRANSIENT))
    ref_of(sup, "t").tell("crash")
    assert journal.next() == [("start", "t")]  # restarted: a failure is not an exit for good
    assert sup.is_alive()
    ref_of(sup, "t").tell("exit")
    assert journal.next() == [("stop", "t")]
    assert wait_exit(sup).reason is ExitReason.NORMAL


def test_all_significant_waits_for_the_last_one(journal: Journal) -> None:
    sup = start(
        journal, ALL, child(journal, "a", Restart.TRANSIENT), child(journal, "b", Restart.TEMPORARY)
    )
    ref_of(sup, "a").tell("exit")
    assert journal.next() == [("stop", "a")]
    assert sup.proxy().count_children().get(timeout=WAIT)["active"] == 1  # still running
    ref_of(sup, "b").tell("exit")
    assert journal.next() == [("stop", "b")]
    assert wait_exit(sup).reason is ExitReason.NORMAL


def test_a_bystander_ending_does_not_stop_the_supervisor(journal: Journal) -> None:
    sup = start(
        journal,
        ANY,
        child(journal, "bystander", Restart.TEMPORARY, significant=False),
        child(journal, "t", Restart.TRANSIENT),
    )
    ref_of(sup, "bystander").tell("exit")
    assert journal.next() == [("stop", "bystander")]
    assert sup.proxy().count_children().get(timeout=WAIT)["active"] == 1
    sup.stop()


def test_terminating_a_significant_child_is_no_auto_shutdown(journal: Journal) -> None:
    sup = start(journal, ANY, child(journal, "t", Restart.TRANSIENT))
    sup.proxy().terminate_child("t").get(timeout=WAIT)
    assert sup.is_alive()
    sup.stop()


def test_auto_shutdown_cascades_through_significant_supervisors(journal: Journal) -> None:
    inner = SupervisorSpec(auto_shutdown=ANY, children=[child(journal, "t", Restart.TEMPORARY)])
    outer = SupervisorSpec(
        auto_shutdown=ANY,
        children=[
            ChildSpec("inner", inner, restart=Restart.TRANSIENT, significant=True),
        ],
    )
    root = Supervisor.start(outer)
    journal.next()
    inner_ref = ref_of(root, "inner")
    ref_of(inner_ref, "t").tell("exit")
    assert wait_exit(inner_ref).reason is ExitReason.NORMAL
    assert wait_exit(root).reason is ExitReason.NORMAL


def test_significance_rules_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="significant child must be TRANSIENT or TEMPORARY"):
        ChildSpec("p", Worker, significant=True)
    with pytest.raises(ValueError, match="child 't' is significant but auto_shutdown is NEVER"):
        SupervisorSpec(
            children=[ChildSpec("t", Worker, restart=Restart.TEMPORARY, significant=True)]
        )
    with pytest.raises(ValueError, match="auto_shutdown must be NEVER with SIMPLE_ONE_FOR_ONE"):
        SupervisorSpec(
            strategy=Strategy.SIMPLE_ONE_FOR_ONE,
            auto_shutdown=ANY,
            children=[ChildSpec("t", Worker)],
        )
    with pytest.raises(TypeError, match="ChildSpec 't': significant must be True or False"):
        ChildSpec("t", Worker, significant="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="auto_shutdown must be an AutoShutdown, got 'any'"):
        SupervisorSpec(auto_shutdown="any")  # type: ignore[arg-type]
