"""What mypy --strict infers for handles (checked by CI's mypy run, never executed)."""

from __future__ import annotations

from typing import assert_type

from actors import TaskHandle, TaskManager, TaskPriority, TaskStatus
from actors.core.retention import TaskId


def parse(page: str, *, strict: bool = False) -> int:
    return len(page)


async def fetch(url: str) -> str:
    return url


def describe(count: int) -> str:
    return str(count)


async def double(count: int) -> int:
    return 2 * count


def takes_any_handle(handle: TaskHandle[object]) -> None:
    del handle


async def checks(tm: TaskManager) -> None:
    page = tm.submit(fetch, "https://example.org")
    assert_type(page, TaskHandle[str])  # a coroutine function: its awaited result
    count = tm.submit(parse, "<html>", strict=True)
    assert_type(count, TaskHandle[int])
    assert_type(await count, int)
    assert_type(count.result(timeout=1.0), int)
    assert_type(count.id, TaskId)
    assert_type(count.then(describe), TaskHandle[str])
    assert_type(count.then(double), TaskHandle[int])
    urgent = tm.options(priority=TaskPriority.HIGH, timeout=5.0, dependencies=[page])
    assert_type(urgent.submit(parse, "<p>"), TaskHandle[int])
    assert_type(tm.map(parse, ["a", "b"]), list[TaskHandle[int]])
    assert_type(tm.map(fetch, ["a", "b"]), list[TaskHandle[str]])
    assert_type(urgent.map(double, range(3)), list[TaskHandle[int]])
    assert_type(await tm.execute_task(count), int)
    assert_type(tm.register_task("legacy", parse, "<p>"), TaskId)
    takes_any_handle(count)  # covariant: a handle of int is a handle of object
    assert_type(tm.get_task_status(count), TaskStatus | None)  # where an id is
