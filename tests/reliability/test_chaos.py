"""A seeded chaos run: a random DAG of a few thousand tasks with injected faults.

Failures, flaky tasks that succeed on retry, hangs past their timeout, and cancels at
random moments (before start, while running, racing completion), over three executors.
Every task must end in exactly one terminal state consistent with its dependencies.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import (
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    TaskTimeoutError,
    current_task,
)

from .conftest import WAIT

SLOTS = 6


@dataclass
class Recorder:
    """What the tasks saw: runs per task, concurrency, and the peak."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    peak: int = 0
    runs: dict[int, int] = field(default_factory=dict)

    def enter(self, n: int) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.runs[n] = self.runs.get(n, 0) + 1

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def sync_work(rec: Recorder, n: int, kind: str) -> int:
    rec.enter(n)
    try:
        context = current_task()
        if kind == "fail":
            raise ValueError(f"task {n} fails")
        if kind == "flaky" and context.attempt < 2:
            raise ConnectionError(f"task {n} flaky")
        if kind == "hang":
            while True:  # interrupted at its timeout
                time.sleep(0.001)
        return n
    finally:
        rec.leave()


async def async_work(rec: Recorder, n: int, kind: str) -> int:
    rec.enter(n)
    try:
        context = current_task()
        await asyncio.sleep(0)
        if kind == "fail":
            raise ValueError(f"task {n} fails")
        if kind == "flaky" and context.attempt < 2:
            raise ConnectionError(f"task {n} flaky")
        if kind == "hang":
            await asyncio.sleep(60)
        return n
    finally:
        rec.leave()


@pytest.mark.parametrize("seed", [1, 2])
def test_chaos(seed: int) -> None:
    rng = random.Random(seed)
    size = 1500
    rec = Recorder()
    tm = TaskManager(max_concurrent_tasks=SLOTS)
    plan: list[dict[str, Any]] = []
    ids: list[str] = []
    try:
        for n in range(size):
            deps = sorted(rng.sample(range(n), k=min(n, rng.choice([0, 0, 1, 2, 3]))))
            if n and rng.random() < 0.5:
                deps = sorted(set(deps) | {n - 1}) if rng.random() < 0.2 else deps
            kind = rng.choices(["ok", "fail", "flaky", "hang"], weights=[80, 8, 8, 4], k=1)[0]
            executor = rng.choice(["thread_pool", "async", "sequential"])
            func = async_work if executor == "async" else sync_work
            retries = 2 if kind == "flaky" else rng.choice([0, 0, 1])
            plan.append({"deps": deps, "kind": kind, "retries": retries})
            ids.append(
                tm.register_task(
                    f"t{n}",
                    func,
                    rec,
                    n,
                    kind,
                    dependencies=[ids[d] for d in deps],
                    max_retries=retries,
                    retry_delay=0.001,
                    timeout=0.05 if kind == "hang" else 5.0,
                    executor_type=executor,
                )
            )
        cancel_before = set(rng.sample(range(size), k=30))
        for n in cancel_before:
            tm.cancel_task_sync(ids[n])
        tm.start_sync()
        # Cancels at random moments while the run goes on, from another thread.
        cancel_later = rng.sample(range(size), k=60)
        cancelled_later: set[int] = set()

        def canceller() -> None:
            for n in cancel_later:
                if tm.cancel_task_sync(ids[n]):
                    cancelled_later.add(n)

        thread = threading.Thread(target=canceller)
        thread.start()
        outcomes: dict[int, Any] = {}
        for n, task_id in enumerate(ids):
            try:
                outcomes[n] = tm.future(task_id).result(timeout=WAIT * 3)
            except TaskError as error:
                outcomes[n] = error
        thread.join(WAIT)
    finally:
        tm.stop_sync(timeout=WAIT)

    cancelled = cancel_before | cancelled_later
    violations: list[str] = []
    for n, task_id in enumerate(ids):
        task = tm.get_task(task_id)
        assert task is not None
        step = plan[n]
        outcome = outcomes[n]
        deps_done = all(tm.get_task_status(ids[d]) is TaskStatus.COMPLETED for d in step["deps"])
        if task.status is TaskStatus.COMPLETED:
            if not deps_done:
                violations.append(f"{n} completed with an unfinished dependency")
            if outcome != n:
                violations.append(f"{n} completed with {outcome!r}")
            for d in step["deps"]:
                dep = tm.get_task(ids[d])
                assert dep is not None
                if not (
                    dep.completed_at and task.started_at and dep.completed_at <= task.started_at
                ):
                    violations.append(f"{n} started before dependency {d} finished")
        elif task.status is TaskStatus.CANCELLED:
            if n not in cancelled:
                violations.append(f"{n} cancelled but nobody cancelled it")
            if not isinstance(outcome, TaskCancellationError):
                violations.append(f"{n} cancelled, execute raised {outcome!r}")
        elif task.status is TaskStatus.FAILED:
            if isinstance(outcome, TaskDependencyError):
                if deps_done:
                    violations.append(f"{n} failed on dependencies that completed")
                if rec.runs.get(n):
                    violations.append(f"{n} ran although a dependency failed")
            elif isinstance(outcome, TaskTimeoutError):
                if step["kind"] != "hang":
                    violations.append(f"{n} timed out but does not hang")
            elif isinstance(outcome, TaskExecutionError):
                if step["kind"] not in ("fail", "flaky"):
                    violations.append(f"{n} failed but its kind is {step['kind']}")
            else:
                violations.append(f"{n} failed with {outcome!r}")
        else:
            violations.append(f"{n} ended {task.status.name}")
        if task.retry_count > step["retries"] or task.attempt > step["retries"] + 1:
            violations.append(f"{n} retried {task.retry_count} times, allowed {step['retries']}")
        if rec.runs.get(n, 0) > step["retries"] + 1:
            violations.append(f"{n} ran {rec.runs[n]} times")
    assert violations == []
    assert rec.peak <= SLOTS
    assert sum(rec.runs.values()) > size // 2  # the run really ran
