"""Backoff between restarts: the policy, and the supervisor following it via its timer."""

from __future__ import annotations

import pytest

from supervision import Backoff, ChildSpec, Supervisor, SupervisorSpec
from tests.supervision.conftest import WAIT, FakeClock, FakeTimer, Journal, Worker, wait_exit


def test_delays_grow_by_the_factor_up_to_the_cap() -> None:
    backoff = Backoff(min_delay=0.5, max_delay=3.0, factor=2.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_bound_and_the_cap() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=4.5, factor=2.0, jitter=0.5)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(base <= d <= min(base + 0.5, 4.5) for d in delays)
        assert len(delays) > 1  # it is random


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_delay": -1}, "Backoff.min_delay must be a finite number >= 0"),
        ({"min_delay": 2, "max_delay": 1}, "is below min_delay"),
        ({"factor": 0.5}, "Backoff.factor must be a finite number >= 1"),
        ({"jitter": "x"}, "Backoff.jitter must be a number"),
    ],
)
def test_bad_backoff_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_the_supervisor_spaces_restarts_by_its_backoff(journal: Journal) -> None:
    timer, clock = FakeTimer(), FakeClock()
    spec = SupervisorSpec(
        max_restarts=100,
        backoff=Backoff(min_delay=1.0, max_delay=4.0, factor=2.0, reset_after=30.0),
        children=[ChildSpec("a", Worker, args=(journal, "a"))],
    )
    sup = Supervisor.start(spec, timer=timer, clock=clock)
    journal.next()
    delays = []
    for _ in range(4):
        a = sup.proxy().which_children().get(timeout=WAIT)[0].ref
        a.tell("crash")  # type: ignore[union-attr]
        delay, fire = timer.next_delay()
        delays.append(delay)
        assert journal.empty()  # nothing restarts before the timer fires
        assert sup.proxy().which_children().get(timeout=WAIT)[0].alive is False
        fire()
        assert journal.next() == [("start", "a")]
    assert delays == [1.0, 2.0, 4.0, 4.0]

    clock.advance(31)  # ran longer than reset_after: the next restart is the first again
    a = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    a.tell("crash")  # type: ignore[union-attr]
    assert timer.next_delay()[0] == 1.0
    sup.stop()  # cancels the pending restart: nothing starts
    assert journal.empty()


def test_a_pending_restart_is_cancelled_by_terminate_child(journal: Journal) -> None:
    timer = FakeTimer()
    spec = SupervisorSpec(
        backoff=Backoff(min_delay=1.0), children=[ChildSpec("a", Worker, args=(journal, "a"))]
    )
    sup = Supervisor.start(spec, timer=timer)
    journal.next()
    a = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    a.tell("crash")  # type: ignore[union-attr]
    wait_exit(a)  # type: ignore[arg-type]
    _, fire = timer.next_delay()
    sup.proxy().terminate_child("a").get(timeout=WAIT)
    fire()
    assert sup.proxy().which_children().get(timeout=WAIT)[0].alive is False
    assert journal.empty()
    sup.stop()
