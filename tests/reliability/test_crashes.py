"""Runtime actors crash at the worst moment; supervisors restart them; no task is lost."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import TaskExecutionError, TaskManager, TaskStatus

from .conftest import WAIT


def count(calls: dict[str, int], key: str, lock: threading.Lock) -> str:
    with lock:
        calls[key] = calls.get(key, 0) + 1
    return key


@pytest.fixture
def tm() -> Any:
    manager = TaskManager(max_concurrent_tasks=4)
    yield manager
    manager.stop_sync(timeout=WAIT)


def test_a_task_actor_crashing_after_the_outcome_loses_nothing(tm: TaskManager) -> None:
    calls: dict[str, int] = {}
    lock = threading.Lock()
    tm.system.faults.arm("task_actor.after_outcome", times=3)
    roots = [tm.register_task(f"r{n}", count, calls, f"r{n}", lock) for n in range(6)]
    leaves = [
        tm.register_task(f"l{n}", count, calls, f"l{n}", lock, dependencies=[roots[n]])
        for n in range(6)
    ]
    for task_id in roots + leaves:
        tm.future(task_id).result(timeout=WAIT)
    assert tm.system.faults.hits("task_actor.after_outcome") == 3
    # The crashes came after each task had completed: none ran twice, dependents woke,
    # and every slot came back.
    assert calls == {f"{p}{n}": 1 for p in "rl" for n in range(6)}
    assert tm.get_metrics()["executors"]["thread_pool"]["busy"] == 0


def test_a_task_actor_crashing_before_the_outcome_fails_the_attempt(tm: TaskManager) -> None:
    tm.system.faults.arm("task_actor.before_outcome")
    calls: dict[str, int] = {}
    lock = threading.Lock()
    no_retry = tm.register_task("once", count, calls, "once", lock)
    with pytest.raises(TaskExecutionError, match="task actor failed"):
        tm.future(no_retry).result(timeout=WAIT)
    tm.system.faults.arm("task_actor.before_outcome")
    retried = tm.register_task("again", count, calls, "again", lock, max_retries=1, retry_delay=0)
    assert tm.future(retried).result(timeout=WAIT) == "again"
    assert calls["again"] == 2  # the retry policy allowed the re-run
    assert tm.get_task_status(no_retry) is TaskStatus.FAILED


async def coroutine_result() -> str:
    return "ran"


def test_a_coroutine_task_actor_crashing_before_the_outcome_fails_the_attempt(
    tm: TaskManager,
) -> None:
    # The attempt ends in the coroutine's last step; a failure there is the task actor's,
    # routed to its supervisor as on a thread (not lost in the loop's exception handler).
    tm.system.faults.arm("task_actor.before_outcome")
    task_id = tm.register_task("once", coroutine_result)
    with pytest.raises(TaskExecutionError, match="task actor failed"):
        tm.future(task_id).result(timeout=WAIT)
    assert tm.future(tm.register_task("again", coroutine_result)).result(timeout=WAIT) == "ran"


@pytest.mark.parametrize("point", ["scheduler.receive", "scheduler.notices"])
def test_the_scheduler_crashing_with_a_message_in_hand_loses_nothing(
    tm: TaskManager, log_events: list[dict[str, Any]], point: str
) -> None:
    tm.start_sync()
    first = tm.system.scheduler
    tm.system.faults.arm(point)
    ids = [tm.register_task(f"t{n}", abs, -n) for n in range(50)]
    assert [tm.future(t).result(timeout=WAIT) for t in ids] == list(range(50))
    assert tm.system.faults.hits(point) == 1
    assert tm.system.scheduler is not first  # it crashed and was restarted
    failed = [e for e in log_events if e["event"] == "supervisor.child_failed"]
    restarted = [e for e in log_events if e["event"] == "supervisor.restart"]
    assert [e["child"] for e in failed] == ["scheduler"]  # what happened is logged
    assert [e["child"] for e in restarted] == ["scheduler"]
    assert f"fault injected at {point}" in str(failed[0]["error"])


def test_an_executor_actor_crash_is_restarted_and_work_goes_on(tm: TaskManager) -> None:
    tm.start_sync()
    before = [tm.register_task(f"b{n}", abs, -n) for n in range(10)]
    executors = tm.system._child("executors")
    pool_actor = next(
        c.ref for c in executors.proxy().which_children().get(timeout=WAIT) if c.id == "thread_pool"
    )
    tm.system.faults.arm("executor_actor.receive")
    pool_actor.tell("anything")
    assert pool_actor.actor_stopped.wait(WAIT)
    after = [tm.register_task(f"a{n}", abs, -n) for n in range(10)]
    assert [tm.future(t).result(timeout=WAIT) for t in before + after] == [*range(10), *range(10)]
    restarted = next(
        c for c in executors.proxy().which_children().get(timeout=WAIT) if c.id == "thread_pool"
    )
    assert restarted.alive
    assert restarted.ref is not pool_actor
