"""One home for a task's fields: ``messages.SubmitTask`` (issue 24).

``register_task`` still lists the fields as keywords (for type checkers and IDEs): these
tests keep its names, defaults and types in step with the spec's, and show every field
of a spec reaching its Task. The start both a system and a manager share is here too.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from actors import ActorSystem, TaskManager, TaskPriority, messages
from actors.compat.task_manager import TaskManager as OldTaskManager
from actors.core.task import Task

from .conftest import WAIT
from .test_locks import SlowToOpen, in_thread

SPEC = {f.name: f for f in dataclasses.fields(messages.SubmitTask)}
# register_task's keyword -> the spec's field, where the names differ.
RENAMED = {"executor_type": "executor"}
# Keywords whose None stands for something else than the spec's own default.
NONE_MEANS = {
    "args": "the spec's ()",
    "dependencies": "the spec's ()",
    "tags": "the spec's ()",
    "executor_type": "the manager's default_executor_type",
}


def _keywords(method: Any) -> dict[str, inspect.Parameter]:
    skip = {"self", "func_args"}
    return {n: p for n, p in inspect.signature(method).parameters.items() if n not in skip}


def test_register_task_keywords_agree_with_the_spec() -> None:
    keywords = _keywords(TaskManager.register_task)
    assert {RENAMED.get(n, n) for n in keywords} == set(SPEC)
    for name, parameter in keywords.items():
        field = SPEC[RENAMED.get(name, name)]
        if name in ("name", "func"):  # positional, required (None: "needs a name")
            assert field.default is dataclasses.MISSING
            continue
        if name == "dependencies":  # a handle is accepted where an id is
            assert parameter.default is None
            assert parameter.annotation == "Iterable[str | TaskHandle[Any]] | None"
        elif name in NONE_MEANS:
            assert parameter.default is None, name
            assert parameter.annotation == f"{field.type} | None", name
        else:
            assert parameter.default == field.default, name
            assert parameter.annotation == field.type, name
    # The manager's own default executor is the spec's.
    default = inspect.signature(TaskManager).parameters["default_executor_type"].default
    assert default == SPEC["executor"].default


def test_options_keywords_are_register_tasks() -> None:
    """``options`` sets every field but the call's own (function, arguments, id)."""
    options = _keywords(TaskManager.options)
    keywords = _keywords(TaskManager.register_task)
    call_only = {"func", "args", "kwargs", "task_id"}
    assert set(options) == set(keywords) - call_only
    for name, parameter in options.items():
        if name == "name":  # None: named after each function
            assert parameter.default is None
            continue
        assert parameter.default == keywords[name].default, name
        assert parameter.annotation == keywords[name].annotation, name


def test_the_old_register_task_parameters_are_the_specs_first_fields() -> None:
    # The compat method builds the spec from them positionally.
    old = _keywords(OldTaskManager.register_task)
    assert list(old) == list(SPEC)[: len(old)]
    for name, parameter in old.items():
        field = SPEC[name]
        if field.default is not dataclasses.MISSING and parameter.default is not None:
            assert parameter.default == field.default, name


def double(value: int, *, factor: int = 2) -> int:
    return value * factor


def test_every_field_of_a_spec_reaches_its_task() -> None:
    with ActorSystem(autostart=False, resources={"gpu": 1}) as system:
        first = system.submit(messages.SubmitTask("first", abs, args=(-1,)))
        spec = messages.SubmitTask(
            "every",
            double,
            args=[3],
            kwargs={"factor": 5},
            priority=TaskPriority.HIGH,
            dependencies=(first,),
            max_retries=2,
            retry_delay=0.5,
            timeout=30.0,
            task_id="every-field",
            description="all set",
            tags=("a", "b"),
            metadata={"m": 1},
            executor="sequential",
            key="every-key",
            delay=0.01,
            limit_key="example.org",
            resources={"gpu": 1},
        )
        # Every field set to something other than its default: a new field must be here
        # (not_before excludes delay: a variant below sets it).
        assert {f for f in SPEC if getattr(spec, f) != SPEC[f].default} == set(SPEC) - {
            "not_before"
        }
        task_id = system.submit(spec)
        task = system.store.snapshot(task_id)
        assert isinstance(task, Task)
        expected: dict[str, object] = {
            "name": "every",
            "func": double,
            "args": (3,),
            "kwargs": {"factor": 5},
            "priority": TaskPriority.HIGH,
            "dependencies": (first,),
            "max_retries": 2,
            "retry_delay": 0.5,
            "timeout": 30.0,
            "task_id": "every-field",
            "description": "all set",
            "tags": ("a", "b"),
            "metadata": {"m": 1},
            "executor": "sequential",
            "limit_key": "example.org",
            "resources": {"gpu": 1},
        }
        assert set(expected) == set(SPEC) - {"key", "delay", "not_before"}
        for name, value in expected.items():
            assert getattr(task, name) == value, name
        # delay and not_before reach the task as its not_before.
        assert task.not_before is not None
        assert task.not_before > task.created_at
        moment = datetime.now(UTC) + timedelta(milliseconds=10)
        timed = dataclasses.replace(spec, task_id=None, key=None, delay=None, not_before=moment)
        timed_task = system.store.snapshot(system.submit(timed))
        assert timed_task is not None
        assert timed_task.not_before == moment
        # The key: the same key answers with the first task's id, whatever else differs.
        again = dataclasses.replace(spec, task_id="other", description="other")
        assert system.submit(again) == task_id
        # A variant is dataclasses.replace on the spec (what ``tm.options(...)`` builds on).
        variant = dataclasses.replace(spec, task_id=None, key=None, priority=TaskPriority.LOW)
        variant_task = system.store.snapshot(system.submit(variant))
        assert variant_task is not None
        assert (variant_task.priority, variant_task.timeout) == (TaskPriority.LOW, 30.0)
        system.scheduler.tell(messages.Start())
        assert system.task_manager.future(variant_task.task_id).result(WAIT) == 15


def test_concurrent_starts_wait_for_the_first_with_no_lock_held() -> None:
    slow = SlowToOpen()
    system = ActorSystem(executors=[slow], autostart=False)
    tm = TaskManager(system=system)
    starters = []
    try:
        with structlog.testing.capture_logs() as logs:
            starters = [in_thread(tm.start_sync) for _ in range(3)]
            assert slow.opening.wait(WAIT)  # one start holds the tree open
            for lock in (tm._lock, system._lock):
                assert lock.acquire(timeout=WAIT), "a lock is held while the start waits"
                lock.release()
            assert not tm.is_running
            slow.proceed.set()
            for thread, _errors in starters:
                thread.join(WAIT)
        assert [errors for _thread, errors in starters] == [[], [], []]
        assert tm.is_running
        assert system.running
        assert [e["event"] for e in logs].count("system.started") == 1
    finally:
        slow.proceed.set()
        tm.stop_sync(WAIT)
        system.shutdown(wait_for_tasks=WAIT)


def test_a_start_that_fails_lets_the_next_one_try_again() -> None:
    system = ActorSystem(autostart=False)
    tm = TaskManager(system=system)
    system.shutdown(wait_for_tasks=WAIT)
    for _ in range(2):  # the second call tries again: it neither waits nor passes
        with pytest.raises(RuntimeError, match="actor system actors is stopped; make a new"):
            tm.start_sync()
    assert tm.state.value == "new"
