"""Watching any pykka actor: a Terminated message with the reason it stopped."""

from __future__ import annotations

import queue
from typing import Any

import pykka
import pytest

from supervision import ChildSpec, ExitReason, Supervisor, SupervisorSpec, Terminated, watch
from tests.supervision.conftest import WAIT, Journal, Watcher, Worker


@pytest.fixture
def watcher() -> Any:
    inbox: queue.Queue[Terminated] = queue.Queue()
    ref = Watcher.start(inbox)
    yield ref, inbox
    ref.stop()


def test_a_normal_stop_is_reported_normal(journal: Journal, watcher: Any) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")  # started by plain pykka, watched afterwards
    watch(ref, watcher_ref)
    ref.stop()
    ended = inbox.get(timeout=WAIT)
    assert (ended.ref, ended.reason, ended.error) == (ref, ExitReason.NORMAL, None)


def test_an_actor_stopping_itself_is_reported_normal(journal: Journal, watcher: Any) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")
    watch(ref, watcher_ref)
    ref.tell("exit")
    assert inbox.get(timeout=WAIT).reason is ExitReason.NORMAL


def test_a_failure_is_reported_with_its_error(journal: Journal, watcher: Any) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")
    watch(ref, watcher_ref)
    ref.tell("crash")
    ended = inbox.get(timeout=WAIT)
    assert ended.reason is ExitReason.FAILED
    assert isinstance(ended.error, RuntimeError)
    assert str(ended.error) == "w crashed"


def test_a_child_stopped_by_its_supervisor_is_reported_killed(
    journal: Journal, watcher: Any
) -> None:
    watcher_ref, inbox = watcher
    sup = Supervisor.start(SupervisorSpec(children=[ChildSpec("w", Worker, args=(journal, "w"))]))
    child = sup.proxy().which_children().get(timeout=WAIT)[0].ref
    watch(child, watcher_ref)
    sup.proxy().terminate_child("w").get(timeout=WAIT)
    assert inbox.get(timeout=WAIT).reason is ExitReason.KILLED
    sup.stop()


def test_watching_a_dead_actor_reports_at_once(journal: Journal, watcher: Any) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")
    watch(ref, watcher_ref)
    ref.stop()
    assert inbox.get(timeout=WAIT).reason is ExitReason.NORMAL
    watch(ref, watcher_ref)  # its end was seen: the same record again
    assert inbox.get(timeout=WAIT).reason is ExitReason.NORMAL


def test_watching_an_actor_that_was_never_watched_and_is_gone_reports_noproc(
    journal: Journal, watcher: Any
) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")
    ref.stop()
    watch(ref, watcher_ref)
    assert inbox.get(timeout=WAIT).reason in (ExitReason.NOPROC, ExitReason.NORMAL)


def test_a_cancelled_watch_tells_nothing(journal: Journal, watcher: Any) -> None:
    watcher_ref, inbox = watcher
    ref = Worker.start(journal, "w")
    watch(ref, watcher_ref).cancel()
    second = watch(ref, watcher_ref)
    ref.stop()
    assert inbox.get(timeout=WAIT).reason is ExitReason.NORMAL
    second.cancel()  # too late: harmless
    # Round trip through the watcher: had the cancelled watch fired, its message would
    # already be in the inbox ahead of this one.
    watcher_ref.ask("ping", timeout=WAIT)
    assert inbox.get(timeout=WAIT) == "ping"
    assert inbox.empty()


def test_a_dead_watcher_is_skipped(journal: Journal) -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    gone = Watcher.start(inbox)
    gone.stop()
    ref = Worker.start(journal, "w")
    watch(ref, gone)
    assert ref.stop() is True
    assert pykka.ActorRegistry.get_all() == []
