"""Bad input is refused at the boundary with a specific error, and nothing is registered."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import (
    ActorSystem,
    AsyncExecutor,
    ProcessExecutor,
    TaskDependencyError,
    TaskManager,
    TaskPriority,
    ThreadPoolExecutor,
)
from supervision import ConfigError

from .conftest import WAIT


def work() -> int:
    return 1


async def agen(n: int = 0) -> AsyncIterator[int]:
    yield n


def gen(n: int = 0) -> Iterator[int]:
    yield n  # never runs: calling gen only makes the generator


class Lines:
    def read(self) -> Iterator[str]:
        yield "line"

    def __call__(self) -> Iterator[str]:
        yield "line"


NUL, LONE_SURROGATE = "a\x00b", "a\ud800b"
TEXT = "must not contain a NUL character or a lone surrogate"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"name": "x", "func": 42}, TypeError, "func must be callable, got 42"),
        ({"name": "", "func": work}, TypeError, "name must be a non-empty string"),
        (
            {"name": "x", "func": work, "timeout": -1},
            ValueError,
            "timeout must be a finite number > 0",
        ),
        (
            {"name": "x", "func": work, "timeout": 0},
            ValueError,
            "timeout must be a finite number > 0",
        ),
        ({"name": "x", "func": work, "timeout": "soon"}, TypeError, "timeout must be a number"),
        (
            {"name": "x", "func": work, "max_retries": -1},
            ValueError,
            "max_retries must be an integer from 0 to 1000000",
        ),
        (
            {"name": "x", "func": work, "max_retries": 1.5},
            TypeError,
            "max_retries must be an integer",
        ),
        ({"name": "x", "func": work, "retry_delay": -0.5}, ValueError, "retry_delay must be"),
        ({"name": "x", "func": work, "priority": 9}, ValueError, "priority must be a TaskPriority"),
        (
            {"name": "x", "func": work, "executor_type": "gpu"},
            ValueError,
            "unknown executor type 'gpu'",
        ),
        ({"name": "x", "func": work, "dependencies": "abc"}, TypeError, "dependencies must be"),
        ({"name": "x", "func": work, "kwargs": [1]}, TypeError, "kwargs must be a mapping"),
        ({"name": "x", "func": work, "metadata": 3}, TypeError, "metadata must be a mapping"),
        (
            {"name": "x", "func": work, "dependencies": ["missing"]},
            TaskDependencyError,
            "depends on unknown task 'missing'",
        ),
        (
            {"name": "x", "func": work, "task_id": "me", "dependencies": ["me"]},
            TaskDependencyError,
            "depends on itself",
        ),
        # Absurd numbers: a wait that long would overflow the timer thread's clock.
        (
            {"name": "x", "func": work, "timeout": 10**400},
            ValueError,
            r"timeout must be a finite number > 0 and <= threading.TIMEOUT_MAX, got 1000",
        ),
        ({"name": "x", "func": work, "timeout": 1e10}, ValueError, "timeout must be a finite"),
        ({"name": "x", "func": work, "timeout": float("inf")}, ValueError, "got inf"),
        ({"name": "x", "func": work, "timeout": float("nan")}, ValueError, "got nan"),
        ({"name": "x", "func": work, "retry_delay": 1e300}, ValueError, "retry_delay must be"),
        ({"name": "x", "func": work, "retry_delay": True}, TypeError, "retry_delay must be a num"),
        # Collections that Python would happily iterate into nonsense.
        ({"name": "x", "func": work, "tags": b"ab"}, TypeError, r"tags must be a list of str"),
        ({"name": "x", "func": work, "tags": [1, None]}, TypeError, r"got 1 in it"),
        ({"name": "x", "func": work, "tags": {"a": 1}}, TypeError, r"tags must be a list"),
        ({"name": "x", "func": work, "args": b"abc"}, TypeError, r"args must be a tuple or list"),
        ({"name": "x", "func": work, "args": "abc"}, TypeError, r"args must be a tuple or list"),
        ({"name": "x", "func": work, "kwargs": {1: 2}}, TypeError, r"kwargs keys must be str"),
        ({"name": "x", "func": work, "priority": True}, TypeError, "priority must be a TaskPri"),
        ({"name": "x", "func": work, "priority": 2.0}, TypeError, "priority must be a TaskPri"),
        ({"name": "x", "func": work, "description": None}, TypeError, "description must be a s"),
        ({"name": "x", "func": work, "dependencies": [[1]]}, TypeError, r"got \[1\] in it"),
        ({"name": "x", "func": work, "dependencies": b"ab"}, TypeError, "dependencies must be"),
        ({"name": "x", "func": agen}, TypeError, "must not be an async generator function"),
        (
            {"name": "x", "func": functools.partial(agen, 1)},
            TypeError,
            "must not be an async generator function",
        ),
        # A sync generator function would "complete" with a generator whose body never ran.
        ({"name": "x", "func": gen}, TypeError, "must not be a generator function"),
        (
            {"name": "x", "func": functools.partial(gen, 1)},
            TypeError,
            "must not be a generator function",
        ),
        ({"name": "x", "func": Lines().read}, TypeError, "must not be a generator function"),
        ({"name": "x", "func": Lines()}, TypeError, "must not be a generator function"),
        # Absurd counts: 10**30 retries never end, 2**63 overflows the journal's integer.
        (
            {"name": "x", "func": work, "max_retries": 10**30},
            ValueError,
            r"max_retries must be an integer from 0 to 1000000 \(a bound that still ends",
        ),
        (
            {"name": "x", "func": work, "max_retries": 2**63},
            ValueError,
            r"max_retries must be an integer from 0 to 1000000 .*got 9223372036854775808",
        ),
        # Text a journal (UTF-8) or a DOT file cannot hold.
        ({"name": NUL, "func": work}, ValueError, f"name {TEXT}"),
        ({"name": LONE_SURROGATE, "func": work}, ValueError, f"name {TEXT}"),
        ({"name": "x", "func": work, "description": NUL}, ValueError, f"description {TEXT}"),
        (
            {"name": "x", "func": work, "description": LONE_SURROGATE},
            ValueError,
            f"description {TEXT}",
        ),
        ({"name": "x", "func": work, "tags": ["ok", NUL]}, ValueError, f"tags {TEXT}"),
        ({"name": "x", "func": work, "tags": [LONE_SURROGATE]}, ValueError, f"tags {TEXT}"),
        ({"name": "x", "func": work, "key": NUL}, ValueError, f"key {TEXT}"),
        ({"name": "x", "func": work, "key": LONE_SURROGATE}, ValueError, f"key {TEXT}"),
        ({"name": "x", "func": work, "task_id": NUL}, ValueError, f"task_id {TEXT}"),
        (
            {"name": "x", "func": work, "metadata": {NUL: 1}},
            ValueError,
            f"metadata keys {TEXT}",
        ),
        (
            {"name": "x", "func": work, "metadata": {"ok": 1, LONE_SURROGATE: 2}},
            ValueError,
            f"metadata keys {TEXT}",
        ),
        ({"func": work}, TypeError, "needs a name"),
        ({"name": "x"}, TypeError, "needs a func"),
    ],
)
def test_bad_registrations_are_refused(
    tm: TaskManager, call: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tm.register_task(**call)
    assert tm.get_metrics()["total_tasks"] == 0
    assert tm.get_all_tasks() == []


def test_the_limits_themselves_are_accepted(tm: TaskManager) -> None:
    # Other text is fine: any Unicode that UTF-8 encodes, in every field.
    text = "caf\u00e9 \u2713 \U0001f600"
    task_id = tm.register_task(
        text,
        work,
        max_retries=1_000_000,
        description=text,
        tags=[text],
        metadata={text: text, 1: "a key that is not text"},
        key=text,
    )
    assert tm.future(task_id).result(timeout=WAIT) == 1
    assert text in tm.graph("dot")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ProcessExecutor(100_000), "max_workers must be an integer from 1 to 1024"),
        (lambda: ProcessExecutor(2**63), "max_workers must be an integer from 1 to 1024"),
        (lambda: ThreadPoolExecutor(100_000), "max_workers must be an integer from 1 to 1024"),
    ],
)
def test_pools_of_absurd_size_are_refused(make: Any, match: str) -> None:
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match=match) as caught:
        make()
    assert "(each is a" in str(caught.value)  # it says why
    assert set(threading.enumerate()) == before


@pytest.mark.parametrize("kind", ["process", "thread_pool"])
def test_a_config_with_a_pool_of_absurd_size_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(f'[[executors]]\nname = "big"\ntype = "{kind}"\nmax_workers = 100000\n')
    with pytest.raises(ConfigError, match=r"executors\[0\].*max_workers must be an integer from"):
        ActorSystem.from_config(path, autostart=False)  # (a regression forks no 100,000)


def test_a_large_manager_keeps_a_sane_default_pool() -> None:
    system = ActorSystem(max_concurrent_tasks=5_000, autostart=False)
    try:
        assert system.max_concurrent_tasks == 5_000
        assert system.executors["thread_pool"].capacity == 1024
    finally:
        system.shutdown()


def test_a_duplicate_id_is_refused_and_the_first_task_kept(tm: TaskManager) -> None:
    tm.register_task("first", work, task_id="same")
    with pytest.raises(ValueError, match="'same' is already registered"):
        tm.register_task("second", work, task_id="same")
    task = tm.get_task("same")
    assert task is not None
    assert task.name == "first"
    assert tm.get_metrics()["total_tasks"] == 1


def test_a_refused_registration_starts_no_thread(tm: TaskManager) -> None:
    before = threading.active_count()
    with pytest.raises(TypeError):
        tm.register_task("x", None)  # type: ignore[arg-type]
    assert threading.active_count() == before


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"task_id": "same"}, ValueError, "'same' is already registered"),
        ({"dependencies": ["nope"]}, TaskDependencyError, "unknown task 'nope'"),
        ({"task_id": "me", "dependencies": ["me"]}, TaskDependencyError, "depends on itself"),
    ],
)
def test_a_refused_task_does_not_add_its_executor(
    tm: TaskManager, call: dict[str, Any], error: type[Exception], match: str
) -> None:
    tm.register_task("first", work, task_id="same")
    executor = AsyncExecutor(max_concurrency=1, name="refused-loop")
    threads = threading.active_count()
    with pytest.raises(error, match=match):
        tm.register_task("x", work, executor_type=executor, **call)
    assert "refused-loop" not in tm.get_metrics()["executors"]
    assert threading.active_count() == threads  # no loop thread started for it
    assert tm.get_metrics()["total_tasks"] == 1


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_concurrent_tasks": 0}, ValueError, "max_concurrent_tasks must be an integer >= 1"),
        ({"max_concurrent_tasks": True}, TypeError, "max_concurrent_tasks must be an integer"),
        ({"default_executor_type": "gpu"}, ValueError, "unknown executor type 'gpu'"),
        ({"default_executor_type": 3}, TypeError, "default_executor_type must be"),
        ({"system": object()}, TypeError, "system must be an ActorSystem"),
    ],
)
def test_bad_manager_options(options: dict[str, Any], error: type[Exception], match: str) -> None:
    before = set(threading.enumerate())
    with pytest.raises(error, match=match):
        TaskManager(**options)
    assert set(threading.enumerate()) == before


def test_a_stopped_manager_refuses_new_work() -> None:
    tm = TaskManager()
    tm.stop_sync(timeout=WAIT)
    with pytest.raises(RuntimeError, match="stopped"):
        tm.register_task("x", work)
    with pytest.raises(RuntimeError, match="stopped"):
        tm.start_sync()


def test_priorities_accept_plain_ints(tm: TaskManager) -> None:
    task_id = tm.register_task("x", work, priority=4)
    task = tm.get_task(task_id)
    assert task is not None
    assert task.priority is TaskPriority.CRITICAL


def test_bad_system_options() -> None:
    with pytest.raises(ValueError, match="max_concurrent_tasks"):
        ActorSystem(max_concurrent_tasks=-1)
    with pytest.raises(ValueError, match="retry_jitter"):
        ActorSystem(retry_jitter=-1, autostart=False)
