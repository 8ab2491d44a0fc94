"""ActorSystem: configuration, the application's supervised actors, shutdown."""

from __future__ import annotations

import ast
import queue
import random
import uuid
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import ActorSystem, TaskManager, ThreadPoolExecutor
from supervision import ConfigError, Restart

from .conftest import WAIT


class Counter(pykka.ThreadingActor):
    def __init__(self, started: queue.Queue[str] | None = None, *, label: str = "c") -> None:
        super().__init__()
        self.count = 0
        self.label = label
        if started is not None:
            started.put(label)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        self.count += 1
        return (self.label, self.count)


CONFIG = """
name = "crawler"
max_concurrent_tasks = 3
max_retry_delay = 5.0

[[executors]]
name = "crawl"
type = "thread_pool"
max_workers = 2

[actors]
strategy = "one_for_one"
[[actors.children]]
id = "counter"
start = "tests.actors.test_system:Counter"
kwargs = { label = "from-config" }
"""


def test_from_config_builds_executors_and_actors(tmp_path: Path) -> None:
    path = tmp_path / "system.toml"
    path.write_text(CONFIG)
    with ActorSystem.from_config(path) as system:
        assert system.name == "crawler"
        assert system.max_concurrent_tasks == 3
        crawl = system.executors["crawl"]
        assert isinstance(crawl, ThreadPoolExecutor)
        assert crawl.capacity == 2
        tm = system.task_manager
        task_id = tm.register_task("t", abs, -3, executor_type="crawl")
        assert tm.future(task_id).result(timeout=WAIT) == 3
        counter = pykka.ActorRegistry.get_by_class_name("Counter")[0]
        assert counter.ask("hi", timeout=WAIT) == ("from-config", 1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_concurent_tasks": 3}, "max_concurent_tasks: unknown key"),
        ({"executors": [{"name": "x", "type": "gpu"}]}, "executors[0].type: 'gpu' is not one of"),
        (
            {"executors": [{"name": "x", "type": "async", "max_workers": 2}]},
            "executors[0].max_workers: unknown key (expected one of max_concurrency, name, type)",
        ),
        ({"actors": {"children": [{"id": "a"}]}}, "actors.children[0]: give exactly one of"),
        ({"max_concurrent_tasks": 0}, "max_concurrent_tasks must be an integer >= 1, got 0"),
    ],
)
def test_config_errors_name_their_place(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ActorSystem.from_config(config)
    assert message in str(caught.value)


def test_spawned_actors_are_supervised() -> None:
    started: queue.Queue[str] = queue.Queue()
    with ActorSystem() as system:
        ref = system.spawn(Counter, started, name="counter", restart=Restart.PERMANENT)
        assert started.get(timeout=WAIT) == "c"
        assert ref.ask("x", timeout=WAIT) == ("c", 1)
        ref.tell("crash")
        assert started.get(timeout=WAIT) == "c"  # restarted by the system's supervisor
        with pytest.raises(ValueError, match="already has a child 'counter'"):
            system.spawn(Counter, name="counter")


def test_shutdown_is_idempotent_and_final() -> None:
    system = ActorSystem()
    system.shutdown()
    system.shutdown()
    with pytest.raises(RuntimeError, match="actor system actors is stopped; make a new one"):
        system.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = system.scheduler


def test_generated_task_ids_are_random_uuid4_strings() -> None:
    from actors.core.registration import new_task_id

    ids = [new_task_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for task_id in ids[:1_000]:
        parsed = uuid.UUID(task_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == task_id  # the canonical lower-case, dashed form


def test_task_ids_do_not_repeat_when_the_random_module_is_reseeded() -> None:
    # Ids come from the runtime's private generator, not from state the application seeds.
    state = random.getstate()
    try:
        with TaskManager() as tm:
            random.seed(1234)
            first = [tm.register_task("a", abs, -1) for _ in range(3)]
            random.seed(1234)
            second = [tm.register_task("b", abs, -1) for _ in range(3)]
            for task_id in first + second:
                assert tm.future(task_id).result(timeout=WAIT) == 1
    finally:
        random.setstate(state)
    assert not set(first) & set(second)


def test_a_reseeded_application_can_reuse_its_journal(tmp_path: Path) -> None:
    # A second run that seeds random as the first did registers new tasks, not the first
    # run's ids again ("a task with id ... is already registered").
    journal = tmp_path / "tasks.sqlite"
    state = random.getstate()
    ids = []
    try:
        for _ in range(2):
            random.seed(7)
            with TaskManager(journal=journal) as tm:
                task_id = tm.register_task("abs", abs, -2)
                assert tm.future(task_id).result(timeout=WAIT) == 2
                ids.append(task_id)
    finally:
        random.setstate(state)
    assert ids[0] != ids[1]


def test_spawn_takes_args_and_kwargs_as_child_spec_does() -> None:
    started: queue.Queue[str] = queue.Queue()
    with ActorSystem() as system:
        by_keyword = system.spawn(Counter, args=(started,), kwargs={"label": "k"}, name="k")
        assert started.get(timeout=WAIT) == "k"
        assert by_keyword.ask("x", timeout=WAIT) == ("k", 1)
        by_keyword.tell("crash")  # the restart gets the same arguments
        assert started.get(timeout=WAIT) == "k"
        with pytest.raises(TypeError, match="not both"):
            system.spawn(Counter, started, args=(started,))
        with pytest.raises(TypeError, match="args must be a tuple or list"):
            system.spawn(Counter, args=started)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="kwargs must be a mapping"):
            system.spawn(Counter, args=(started,), kwargs=["label"])  # type: ignore[arg-type]
        names = [c.id for c in system._child("actors").proxy().which_children().get(timeout=WAIT)]
        assert names == ["k"]  # the refused calls started nothing


def _imports_at_run_time(module: Any) -> list[str]:
    """The modules ``module``'s source imports, save under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)  # importlib.import_module("actors.manager")
    return found


def test_the_system_never_imports_the_manager_that_sits_above_it() -> None:
    import actors.system

    imported = _imports_at_run_time(actors.system)
    assert "actors.core.registration" in imported
    assert "actors.manager" not in imported
    with ActorSystem(autostart=False) as system:
        assert isinstance(system.task_manager, TaskManager)
        assert system.task_manager is system.task_manager
