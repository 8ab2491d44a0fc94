"""Named children inside the task system: tasks reach them, a journal's next run finds them,
and the library's hosted actors keep their messages through a restart."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pykka

from actors import ActorSystem, HostedActor, TaskManager, ThreadPoolDispatcher
from supervision import ChildSpec, Shutdown, Supervisor, SupervisorSpec, named, whereis
from tests.supervision.conftest import WAIT, wait_exit


class Cache(pykka.ThreadingActor):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("cache crashed")
        return (self.label, message)


def tree(label: str) -> SupervisorSpec:
    return SupervisorSpec(children=[ChildSpec("cache", Cache, args=(label,), name="cache")])


def ask_cache(key: str) -> Any:
    """A task: it reaches whichever cache runs, by name."""
    return named("cache").ask(key, timeout=WAIT)


def test_a_task_reaches_a_named_actor_through_its_restart() -> None:
    with ActorSystem(actors=tree("one")) as system, TaskManager(system=system) as tm:
        tm.start_sync()
        first = whereis("cache")
        assert first is not None
        first.tell("crash")
        wait_exit(first)
        task_id = tm.register_task("ask", ask_cache, "k")
        assert tm.future(task_id).result(WAIT) == ("one", "k")
    assert whereis("cache") is None  # the system's shutdown freed the name


def test_a_journaled_task_reaches_the_named_actor_of_the_next_run(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    system = ActorSystem(actors=tree("first run"), journal=journal)
    try:
        tm = TaskManager(system=system)
        task_id = tm.register_task("ask", ask_cache, "k")  # never started: left PENDING
        assert named("cache").ask("hello", timeout=WAIT) == ("first run", "hello")
        tm.stop_sync(timeout=WAIT)
    finally:
        system.shutdown()
    with (
        ActorSystem(actors=tree("second run"), journal=journal) as system,
        TaskManager(system=system) as again,
    ):
        again.start_sync()
        assert again.future(task_id).result(WAIT) == ("second run", "k")


def test_a_hosted_actor_keeps_its_messages_through_a_restart_and_is_killed_at_once() -> None:
    pool = ThreadPoolDispatcher(2, name="test-seams")
    seen: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()

    class Hosted(HostedActor):
        dispatcher = pool

        def on_receive(self, message: Any) -> Any:
            if message == "crash":
                raise RuntimeError("hosted crashed")
            if message == "block":
                gate.wait(WAIT)
                return None
            seen.put((self.actor_urn, message))
            return None

    spec = ChildSpec("h", Hosted, name="hosted", shutdown=Shutdown.BRUTAL_KILL)
    sup = Supervisor.start(SupervisorSpec(children=[spec]))
    try:
        ref = named("hosted")
        for message in ("block", "crash", 1, 2, 3):
            ref.tell(message)
        gate.set()
        got = [seen.get(timeout=WAIT) for _ in range(3)]
        assert [m for _, m in got] == [1, 2, 3]
        assert len({urn for urn, _ in got}) == 1  # all handled by the next incarnation
        child = whereis("hosted")
        assert child is not None
        sup.stop()  # brutal kill: at once
        wait_exit(child)
    finally:
        pool.shutdown()


INLINE_SCENARIO = """
import queue
from typing import Any

from actors import HostedActor
from actors.runtime.inline import InlineDispatcher
from actors.runtime.sync import run_now
from supervision import ChildSpec, Supervisor, SupervisorSpec, named

seen: queue.Queue = queue.Queue()


class Inline(HostedActor):
    dispatcher = InlineDispatcher(lambda: run_now, name="inline-test")

    def on_receive(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("inline crash")
        seen.put(message)


sup = Supervisor.start(SupervisorSpec(children=[ChildSpec("i", Inline, name="inline")]))
ref = named("inline")
for message in (1, "crash", 2, "crash", 3):
    ref.tell(message)  # each runs on this thread, inside the name's lock
got = []
while len(got) < 3:
    got.append(seen.get(timeout=5))
assert got == [1, 2, 3], got
sup.stop()
Inline.dispatcher.shutdown()
print("ok")
"""


def test_an_inline_hosted_named_actor_fails_inside_a_send_without_a_deadlock() -> None:
    # A deadlock would hang: run it in a process of its own, with a deadline.
    done = subprocess.run(
        [sys.executable, "-c", INLINE_SCENARIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
