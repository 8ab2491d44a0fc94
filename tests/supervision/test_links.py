"""Links between any two pykka actors, and actors that trap exits."""

from __future__ import annotations

import queue
from typing import Any

import pykka
import pytest

from supervision import (
    ChildSpec,
    Exited,
    ExitReason,
    Supervisor,
    SupervisorSpec,
    link,
    unlink,
)
from tests.supervision.conftest import WAIT, Journal, Worker, wait_exit


class Trapper(pykka.ThreadingActor):
    trap_exits = True

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> Any:
        self.inbox.put(message)
        return "alive"


def test_a_failure_stops_the_linked_actor_with_the_same_error(journal: Journal) -> None:
    a, b = Worker.start(journal, "a"), Worker.start(journal, "b")
    journal.next(2)
    link(a, b)
    a.tell("crash")
    ended = wait_exit(b)
    assert ended.reason is ExitReason.FAILED
    assert str(ended.error) == "a crashed"
    assert wait_exit(a).error is ended.error
    assert journal.empty()  # b was killed: its on_stop is skipped


def test_links_work_both_ways(journal: Journal) -> None:
    a, b = Worker.start(journal, "a"), Worker.start(journal, "b")
    link(a, b)
    b.tell("crash")
    assert wait_exit(a).reason is ExitReason.FAILED


def test_an_actor_that_traps_exits_is_told_instead() -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    journal = Journal()
    worker, trapper = Worker.start(journal, "w"), Trapper.start(inbox)
    link(worker, trapper)
    worker.tell("crash")
    exited = inbox.get(timeout=WAIT)
    assert isinstance(exited, Exited)
    assert (exited.ref, exited.reason, str(exited.error)) == (
        worker,
        ExitReason.FAILED,
        "w crashed",
    )
    assert trapper.ask("still there?", timeout=WAIT) == "alive"
    trapper.stop()


def test_a_normal_exit_stops_nobody_but_is_told_to_a_trapper(journal: Journal) -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    a, b, trapper = Worker.start(journal, "a"), Worker.start(journal, "b"), Trapper.start(inbox)
    link(a, b)
    link(a, trapper)
    a.stop()
    assert inbox.get(timeout=WAIT).reason is ExitReason.NORMAL
    assert b.is_alive()
    b.stop()
    trapper.stop()


def test_unlink_removes_the_link(journal: Journal) -> None:
    a, b = Worker.start(journal, "a"), Worker.start(journal, "b")
    link(a, b)
    link(a, b)  # idempotent
    unlink(b, a)
    a.tell("crash")
    wait_exit(a)
    assert b.ask("ping", timeout=WAIT) == ("b", "ping")
    b.stop()


def test_a_supervised_child_killed_by_a_link_is_restarted(journal: Journal) -> None:
    sup = Supervisor.start(SupervisorSpec(children=[ChildSpec("c", Worker, args=(journal, "c"))]))
    journal.next()
    child = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    peer = Worker.start(journal, "peer")
    journal.next()
    link(child, peer)
    peer.tell("crash")
    assert wait_exit(child).reason is ExitReason.FAILED
    assert journal.next() == [("start", "c")]
    sup.stop()


def test_linking_a_stopped_actor_or_itself_is_refused(journal: Journal) -> None:
    a, b = Worker.start(journal, "a"), Worker.start(journal, "b")
    b.stop()
    with pytest.raises(pykka.ActorDeadError, match=r"cannot link .* it has stopped"):
        link(a, b)
    with pytest.raises(ValueError, match="cannot be linked to itself"):
        link(a, a)
    with pytest.raises(TypeError, match="link takes two pykka ActorRefs, got 'b'"):
        link(a, "b")  # type: ignore[arg-type]
    a.stop()
