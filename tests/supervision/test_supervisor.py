"""Supervisor behaviour: start/stop order, strategies, restart types, introspection."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import (
    ChildInfo,
    ChildSpec,
    ChildStartError,
    Restart,
    Strategy,
    Supervisor,
    SupervisorSpec,
)
from tests.supervision.conftest import WAIT, FailingStart, Journal, Worker, wait_exit


def workers(journal: Journal, *names: str, **options: Any) -> list[ChildSpec]:
    return [ChildSpec(name, Worker, args=(journal, name), **options) for name in names]


def refs_of(sup: pykka.ActorRef[Supervisor]) -> dict[str, pykka.ActorRef[Any] | None]:
    return {info.id: info.ref for info in sup.proxy().which_children().get(timeout=WAIT)}


def test_children_start_in_order_and_stop_in_reverse(journal: Journal) -> None:
    sup = Supervisor.start(SupervisorSpec(children=workers(journal, "a", "b", "c")))
    # Supervisor.start returns only once every on_start has run.
    assert journal.empty() is False
    assert journal.next(3) == [("start", "a"), ("start", "b"), ("start", "c")]
    sup.stop()
    assert journal.next(3) == [("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_each_child_is_started_before_the_next_is_created(journal: Journal) -> None:
    created: list[str] = []

    class Recorder(Worker):
        def __init__(self, journal: Journal, name: str) -> None:
            created.append(f"init {name} after {len(journal.entries)} starts")
            super().__init__(journal, name)

        def on_start(self) -> None:
            self.journal.entries.append(("start", self.name))

    spec = SupervisorSpec(children=[ChildSpec(n, Recorder, args=(journal, n)) for n in "ab"])
    sup = Supervisor.start(spec)
    sup.stop()
    assert created == ["init a after 0 starts", "init b after 1 starts"]


def test_one_for_one_restarts_only_the_failed_child(journal: Journal) -> None:
    sup = Supervisor.start(SupervisorSpec(children=workers(journal, "a", "b", "c")))
    journal.next(3)
    before = refs_of(sup)
    before["b"].tell("crash")  # type: ignore[union-attr]
    assert journal.next() == [("start", "b")]
    after = refs_of(sup)
    assert after["a"] is before["a"]
    assert after["c"] is before["c"]
    assert after["b"] is not before["b"]
    assert after["b"].is_alive()  # type: ignore[union-attr]
    sup.stop()
    journal.next(3)


def test_one_for_all_restarts_every_child_in_order(journal: Journal) -> None:
    spec = SupervisorSpec(strategy=Strategy.ONE_FOR_ALL, children=workers(journal, "a", "b", "c"))
    sup = Supervisor.start(spec)
    journal.next(3)
    refs_of(sup)["b"].tell("crash")  # type: ignore[union-attr]
    assert journal.next(5) == [
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    assert all(info.alive for info in sup.proxy().which_children().get(timeout=WAIT))
    sup.stop()
    journal.next(3)


def test_rest_for_one_restarts_the_failed_child_and_those_after_it(journal: Journal) -> None:
    spec = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE, children=workers(journal, "a", "b", "c", "d")
    )
    sup = Supervisor.start(spec)
    journal.next(4)
    before = refs_of(sup)
    before["b"].tell("crash")  # type: ignore[union-attr]
    assert journal.next(5) == [
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert refs_of(sup)["a"] is before["a"]
    sup.stop()
    journal.next(4)


def test_simple_one_for_one_starts_dynamic_children_from_its_template(journal: Journal) -> None:
    template = ChildSpec("worker", Worker, args=(journal,), restart=Restart.TRANSIENT)
    sup = Supervisor.start(
        SupervisorSpec(strategy=Strategy.SIMPLE_ONE_FOR_ONE, children=[template])
    )
    proxy = sup.proxy()
    assert proxy.which_children().get(timeout=WAIT) == []
    first = proxy.start_child(args=("one",)).get(timeout=WAIT)
    second = proxy.start_child(args=("two",)).get(timeout=WAIT)
    assert journal.next(2) == [("start", "one"), ("start", "two")]
    assert [c.id for c in proxy.which_children().get(timeout=WAIT)] == ["worker-1", "worker-2"]
    assert first.ask("hi", timeout=WAIT) == ("one", "hi")

    second.tell("crash")  # restarted alone, with its own args
    assert journal.next() == [("start", "two")]
    assert first.is_alive()

    proxy.terminate_child("worker-1").get(timeout=WAIT)
    assert journal.next() == [("stop", "one")]
    assert [c.id for c in proxy.which_children().get(timeout=WAIT)] == ["worker-2"]

    with pytest.raises(ValueError, match="takes args/kwargs for its template"):
        proxy.start_child(ChildSpec("x", Worker)).get(timeout=WAIT)
    sup.stop()
    assert journal.next() == [("stop", "two")]


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        (Restart.PERMANENT, "crash", True),
        (Restart.PERMANENT, "exit", True),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TRANSIENT, "exit", False),
        (Restart.TEMPORARY, "crash", False),
        (Restart.TEMPORARY, "exit", False),
    ],
)
def test_restart_types(journal: Journal, restart: Restart, how: str, restarted: bool) -> None:
    children = [*workers(journal, "a", restart=restart), *workers(journal, "sentinel")]
    sup = Supervisor.start(SupervisorSpec(children=children))
    journal.next(2)
    a = refs_of(sup)["a"]
    assert a is not None
    a.tell(how)
    wait_exit(a)  # the supervisor has been told by now
    if how == "exit":
        assert journal.next() == [("stop", "a")]
    infos = {c.id: c for c in sup.proxy().which_children().get(timeout=WAIT)}
    if restart is Restart.TEMPORARY:
        assert "a" not in infos  # a temporary child's spec goes with it
    else:
        assert infos["a"].alive is restarted
    if restarted:
        assert journal.next() == [("start", "a")]
        assert infos["a"].ref is not a
    sup.stop()
    stops = [("stop", "sentinel"), ("stop", "a")] if restarted else [("stop", "sentinel")]
    assert journal.next(len(stops)) == stops
    assert journal.empty()


def test_an_error_in_an_ask_goes_to_the_caller_and_the_child_lives_on(journal: Journal) -> None:
    sup = Supervisor.start(SupervisorSpec(children=workers(journal, "a")))
    journal.next()
    ref = refs_of(sup)["a"]
    assert ref is not None
    with pytest.raises(ValueError, match="bad question"):
        ref.ask("ask-error", timeout=WAIT)
    assert ref.ask("still there?", timeout=WAIT) == ("a", "still there?")
    assert refs_of(sup)["a"] is ref
    sup.stop()
    assert journal.next() == [("stop", "a")]
    assert journal.empty()


def test_a_failing_on_start_stops_the_started_children_and_fails_the_start(
    journal: Journal,
) -> None:
    children = [
        *workers(journal, "a"),
        ChildSpec("b", FailingStart, args=(journal, "b")),
        *workers(journal, "c"),
    ]
    with pytest.raises(ChildStartError, match="child 'b' failed to start") as error:
        Supervisor.start(SupervisorSpec(children=children))
    assert isinstance(error.value.error, RuntimeError)
    assert journal.next(3) == [("start", "a"), ("start-failed", "b"), ("stop", "a")]
    assert pykka.ActorRegistry.get_all() == []


def test_a_constructor_error_fails_the_start(journal: Journal) -> None:
    spec = SupervisorSpec(children=[ChildSpec("a", Worker, args=(journal,))])  # missing name
    with pytest.raises(ChildStartError, match="child 'a' failed to start: TypeError"):
        Supervisor.start(spec)
    assert pykka.ActorRegistry.get_all() == []


def test_a_child_stuck_in_on_stop_is_left_after_its_shutdown_timeout(
    journal: Journal, log_events: list[dict[str, Any]]
) -> None:
    release = threading.Event()

    class Stuck(Worker):
        def on_stop(self) -> None:
            self.journal.put("stopping", self.name)
            release.wait(WAIT)

    spec = SupervisorSpec(
        children=[
            *workers(journal, "a"),
            ChildSpec("stuck", Stuck, args=(journal, "stuck"), shutdown_timeout=0.05),
        ]
    )
    sup = Supervisor.start(spec)
    journal.next(2)
    assert sup.stop(timeout=WAIT) is True  # the supervisor still stops
    assert journal.next(2) == [("stopping", "stuck"), ("stop", "a")]
    timeouts = [e for e in log_events if e["event"] == "supervisor.shutdown_timeout"]
    assert [(e["child"], e["timeout"]) for e in timeouts] == [("stuck", 0.05)]
    release.set()  # let the stuck thread end, so that nothing leaks


def test_children_started_by_a_factory_are_supervised(journal: Journal) -> None:
    def factory(name: str) -> pykka.ActorRef[Worker]:
        return Worker.start(journal, name)

    sup = Supervisor.start(SupervisorSpec(children=[ChildSpec("f", factory, args=("f",))]))
    assert journal.next() == [("start", "f")]
    refs_of(sup)["f"].tell("crash")  # type: ignore[union-attr]
    assert journal.next() == [("start", "f")]
    sup.stop()
    assert journal.next() == [("stop", "f")]


def test_introspection_and_static_child_management(journal: Journal) -> None:
    sup = Supervisor.start(SupervisorSpec(children=workers(journal, "a")))
    proxy = sup.proxy()
    journal.next()
    b = proxy.start_child(ChildSpec("b", Worker, args=(journal, "b"))).get(timeout=WAIT)
    assert journal.next() == [("start", "b")]
    assert proxy.count_children().get(timeout=WAIT) == {
        "specs": 2,
        "active": 2,
        "supervisors": 0,
        "workers": 2,
    }
    with pytest.raises(ValueError, match="already has a child 'b'"):
        proxy.start_child(ChildSpec("b", Worker, args=(journal, "b"))).get(timeout=WAIT)

    proxy.terminate_child("b").get(timeout=WAIT)
    assert journal.next() == [("stop", "b")]
    infos = proxy.which_children().get(timeout=WAIT)
    assert infos[1] == ChildInfo("b", None, False)  # the spec stays, not running

    new_b = proxy.restart_child("b").get(timeout=WAIT)
    assert journal.next() == [("start", "b")]
    assert new_b is not b
    assert new_b.is_alive()

    with pytest.raises(LookupError, match="has no child 'zzz'"):
        proxy.terminate_child("zzz").get(timeout=WAIT)
    sup.stop()
    assert journal.next(2) == [("stop", "b"), ("stop", "a")]


def test_a_nested_supervisor_is_a_child_like_any_other(journal: Journal) -> None:
    inner = SupervisorSpec(children=workers(journal, "x", "y"))
    spec = SupervisorSpec(children=[*workers(journal, "a"), ChildSpec("inner", inner)])
    sup = Supervisor.start(spec)
    assert journal.next(3) == [("start", "a"), ("start", "x"), ("start", "y")]
    assert sup.proxy().count_children().get(timeout=WAIT)["supervisors"] == 1
    sup.stop()
    assert journal.next(3) == [("stop", "y"), ("stop", "x"), ("stop", "a")]


def test_bad_specs_are_refused() -> None:
    with pytest.raises(TypeError, match="start must be a pykka Actor class"):
        ChildSpec("a", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate child id 'a'"):
        SupervisorSpec(children=[ChildSpec("a", Worker), ChildSpec("a", Worker)])
    with pytest.raises(ValueError, match="exactly one child template"):
        SupervisorSpec(strategy=Strategy.SIMPLE_ONE_FOR_ONE)
    with pytest.raises(TypeError, match="takes a SupervisorSpec"):
        Supervisor.start("not a spec")  # type: ignore[arg-type]
