"""OTP's remaining calls: delete_child, get_childspec, check_childspecs, max_children
(supervisor_SUITE's child_adm, child_adm_simple and child_specs)."""

from __future__ import annotations

from typing import Any

import pytest

from supervision import (
    ChildSpec,
    ChildStartError,
    ConfigError,
    Restart,
    Shutdown,
    Strategy,
    Supervisor,
    SupervisorSpec,
    check_childspecs,
)
from tests.supervision.conftest import WAIT, Journal, Worker

WORKER = "tests.supervision.conftest:Worker"


def test_get_childspec_and_delete_child(journal: Journal) -> None:
    spec = ChildSpec("a", Worker, args=(journal, "a"), name="a-name")
    sup = Supervisor.start(SupervisorSpec(children=[spec]))
    proxy = sup.proxy()
    assert proxy.get_childspec("a").get(timeout=WAIT) is spec
    with pytest.raises(RuntimeError, match=r"child 'a' of supervisor .* is running"):
        proxy.delete_child("a").get(timeout=WAIT)
    proxy.terminate_child("a").get(timeout=WAIT)
    assert proxy.which_children().get(timeout=WAIT)[0].ref is None  # terminated: spec kept
    proxy.delete_child("a").get(timeout=WAIT)
    assert proxy.which_children().get(timeout=WAIT) == []
    with pytest.raises(LookupError, match="has no child 'a'"):
        proxy.get_childspec("a").get(timeout=WAIT)
    with pytest.raises(LookupError, match="has no child 'a'"):
        proxy.restart_child("a").get(timeout=WAIT)
    sup.stop()


def test_simple_one_for_one_children_are_not_deleted(journal: Journal) -> None:
    template = ChildSpec("w", Worker, args=(journal,), restart=Restart.TEMPORARY)
    sup = Supervisor.start(
        SupervisorSpec(strategy=Strategy.SIMPLE_ONE_FOR_ONE, children=[template])
    )
    proxy = sup.proxy()
    proxy.start_child(args=("one",)).get(timeout=WAIT)
    assert proxy.get_childspec("w-1").get(timeout=WAIT).args == (journal, "one")
    with pytest.raises(ValueError, match=r"SIMPLE_ONE_FOR_ONE: .* terminate_child removes them"):
        proxy.delete_child("w-1").get(timeout=WAIT)
    sup.stop()


def test_max_children_bounds_a_simple_one_for_one(journal: Journal) -> None:
    template = ChildSpec("w", Worker, args=(journal,))
    spec = SupervisorSpec(strategy=Strategy.SIMPLE_ONE_FOR_ONE, max_children=2, children=[template])
    sup = Supervisor.start(spec, name="pool")
    proxy = sup.proxy()
    proxy.start_child(args=("1",)).get(timeout=WAIT)
    proxy.start_child(args=("2",)).get(timeout=WAIT)
    with pytest.raises(ChildStartError, match="supervisor pool already runs max_children=2"):
        proxy.start_child(args=("3",)).get(timeout=WAIT)
    assert journal.next(2) == [("start", "1"), ("start", "2")]
    proxy.terminate_child("w-1").get(timeout=WAIT)
    proxy.start_child(args=("4",)).get(timeout=WAIT)  # room again
    assert journal.next(2) == [("stop", "1"), ("start", "4")]
    sup.stop()


def test_max_children_is_checked() -> None:
    template = ChildSpec("w", Worker)
    with pytest.raises(ValueError, match="max_children is for SIMPLE_ONE_FOR_ONE only"):
        SupervisorSpec(max_children=2, children=[template])
    with pytest.raises(ValueError, match="max_children must be an integer >= 1, got 0"):
        SupervisorSpec(strategy=Strategy.SIMPLE_ONE_FOR_ONE, max_children=0, children=[template])


def test_check_childspecs_builds_good_specs() -> None:
    specs = check_childspecs(
        [
            {"id": "a", "start": WORKER, "shutdown": "brutal_kill", "name": "a"},
            ChildSpec("b", Worker, restart=Restart.TRANSIENT),
        ]
    )
    assert [s.id for s in specs] == ["a", "b"]
    assert specs[0].shutdown is Shutdown.BRUTAL_KILL


def test_check_childspecs_names_each_bad_field() -> None:
    with pytest.raises(ConfigError) as caught:
        check_childspecs(
            [
                {"id": "a", "start": WORKER, "restart": "sometimes"},
                {"id": "b", "start": WORKER, "shutdown": -1},
                {"id": "c", "start": WORKER, "name": "n"},
                {"id": "c", "start": WORKER, "name": "n"},
                {"id": "e", "start": WORKER, "significant": True},
            ]
        )
    message = str(caught.value)
    for part in (
        "5 bad child spec(s)",
        "[0].restart: 'sometimes' is not one of permanent, transient, temporary",
        "[1].shutdown: must be >= 0, got -1",
        "[3].id: 'c' is also the id of [2]",
        "[3].name: 'n' is also the name of [2]",
        "[4]: ChildSpec 'e': a significant child must be TRANSIENT or TEMPORARY",
    ):
        assert part in message, (part, message)


def test_which_children_shows_names(journal: Journal) -> None:
    children = [
        ChildSpec("a", Worker, args=(journal, "a"), name="alpha"),
        ChildSpec("b", Worker, args=(journal, "b")),
    ]
    sup = Supervisor.start(SupervisorSpec(children=children))
    infos: list[Any] = sup.proxy().which_children().get(timeout=WAIT)
    assert [(i.id, i.name) for i in infos] == [("a", "alpha"), ("b", None)]
    sup.stop()


def test_which_children_counts_each_childs_restarts(journal: Journal) -> None:
    # ONE_FOR_ALL: a crash of "a" restarts both; "b" counts its restart too.
    children = [
        ChildSpec("a", Worker, args=(journal, "a")),
        ChildSpec("b", Worker, args=(journal, "b")),
    ]
    sup = Supervisor.start(SupervisorSpec(strategy=Strategy.ONE_FOR_ALL, children=children))
    proxy = sup.proxy()
    assert journal.next(2) == [("start", "a"), ("start", "b")]
    for _ in range(2):
        first = proxy.which_children().get(timeout=WAIT)[0].ref
        first.tell("crash")
        seen: list[tuple[str, ...]] = []
        while ("start", "b") not in seen:  # "b" starts again last
            seen += journal.next()
    infos: list[Any] = proxy.which_children().get(timeout=WAIT)
    assert [(i.id, i.restarts, i.alive) for i in infos] == [("a", 2, True), ("b", 2, True)]
    proxy.terminate_child("b").get(timeout=WAIT)
    proxy.restart_child("b").get(timeout=WAIT)  # asked for, not by the strategy
    assert proxy.which_children().get(timeout=WAIT)[1].restarts == 2
    sup.stop()
