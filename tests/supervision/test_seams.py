"""Named children inside the task system: tasks reach them, a journal's next run finds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pykka

from actors import ActorSystem, TaskManager
from supervision import ChildSpec, SupervisorSpec, named, whereis
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
