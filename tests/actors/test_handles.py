"""Typed handles: submit, options, map, then; a handle wherever an id goes; a handle given
as an argument stands for its task's result, on every executor and across a restart."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import (
    TaskCancellationError,
    TaskDependencyError,
    TaskExecutionError,
    TaskHandle,
    TaskManager,
    TaskPriority,
    TaskStatus,
    current_task,
)

from .conftest import WAIT, Gate


def square(n: int) -> int:
    return n * n


def total(numbers: list[int]) -> int:
    return sum(numbers)


def label(value: object, *, prefix: str = "") -> str:
    return f"{prefix}{value}"


async def twice(n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


def boom() -> int:
    raise ValueError("boom")


def test_submit_gives_a_handle_to_the_result(tm: TaskManager) -> None:
    handle = tm.submit(square, 7)
    assert isinstance(handle, TaskHandle)
    assert handle.result(timeout=WAIT) == 49
    assert handle.done()
    assert handle.status is TaskStatus.COMPLETED
    assert handle.exception(timeout=WAIT) is None
    assert tm.get_task_result(handle) == 49  # a handle wherever an id goes
    assert tm.get_task(handle.id) is not None
    assert repr(handle) == f"<TaskHandle {handle.id} COMPLETED>"


def test_a_failed_task_raises_through_its_handle(tm: TaskManager) -> None:
    handle = tm.submit(boom)
    with pytest.raises(TaskExecutionError, match="boom"):
        handle.result(timeout=WAIT)
    error = handle.exception(timeout=WAIT)
    assert isinstance(error, TaskExecutionError)


def test_await_a_handle_and_a_coroutine_function() -> None:
    async def main() -> None:
        async with TaskManager() as tm:
            handle = tm.submit(twice, 21)
            assert await handle == 42
            assert await tm.execute_task(handle) == 42
            done, pending = await tm.wait([handle])
            assert (done, pending) == ({handle}, set())  # the objects it was given
            assert [h async for h in tm.as_completed([handle])] == [handle]

    asyncio.run(main())


def test_cancel_and_progress_through_a_handle(tm: TaskManager, gate: Gate) -> None:
    def report_then_hold() -> None:
        current_task().report_progress(0.5, "half")
        gate.hold("held")

    tm.start_sync()  # as register_task, submit does not start the manager
    handle = tm.submit(report_then_hold)
    gate.wait_arrivals(1)
    assert handle.progress == (0.5, "half")
    assert not handle.done()
    assert handle.cancel()
    with pytest.raises(TaskCancellationError):
        handle.result(timeout=WAIT)


def test_options_set_a_tasks_fields(tm: TaskManager) -> None:
    first = tm.submit(square, 2)
    urgent = tm.options(
        name="urgent",
        priority=TaskPriority.HIGH,
        dependencies=[first],
        max_retries=2,
        retry_delay=0.0,
        timeout=30.0,
        tags=["a"],
        metadata={"k": 1},
        description="d",
    )
    handle = urgent.submit(label, 3, prefix="#")
    assert handle.result(timeout=WAIT) == "#3"
    task = tm.get_task(handle)
    assert task is not None
    assert (task.name, task.priority, task.dependencies) == (
        "urgent",
        TaskPriority.HIGH,
        (first.id,),
    )
    assert (task.max_retries, task.timeout, task.tags, dict(task.metadata)) == (
        2,
        30.0,
        ("a",),
        {"k": 1},
    )


def test_bad_options_are_refused_at_once(tm: TaskManager) -> None:
    with pytest.raises(ValueError, match="timeout"):
        tm.options(timeout=float("nan"))
    with pytest.raises(TypeError, match="priority"):
        tm.options(priority="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        tm.options(key="one").map(square, [1, 2])
    assert tm.get_all_tasks() == []  # nothing registered


def test_map_submits_one_task_per_item(tm: TaskManager) -> None:
    handles = tm.map(square, range(5))
    assert [h.result(timeout=WAIT) for h in handles] == [0, 1, 4, 9, 16]
    assert tm.options(name="sq").map(square, [3])[0].result(timeout=WAIT) == 9


def test_then_gets_the_result(tm: TaskManager) -> None:
    assert tm.submit(square, 3).then(label).result(timeout=WAIT) == "9"


def test_a_handle_as_an_argument_stands_for_its_result(tm: TaskManager) -> None:
    parts = [tm.submit(square, n) for n in range(4)]
    handle = tm.submit(total, parts)  # inside a list, as Dask does
    assert handle.result(timeout=WAIT) == 14
    task = tm.get_task(handle)
    assert task is not None
    assert set(task.dependencies) == {p.id for p in parts}
    assert tm.submit(label, parts[3], prefix="=").result(timeout=WAIT) == "=9"


def test_a_result_that_is_none_is_given_as_none(tm: TaskManager) -> None:
    nothing = tm.submit(print, end="")
    assert tm.submit(label, nothing).result(timeout=WAIT) == "None"


def test_a_failed_input_fails_the_task_that_needed_it(tm: TaskManager) -> None:
    handle = tm.submit(label, tm.submit(boom))
    with pytest.raises(TaskDependencyError):
        handle.result(timeout=WAIT)


def test_holding_a_handle_keeps_its_task(make_manager: Callable[..., TaskManager]) -> None:
    tm = make_manager(keep_finished=0)
    handle = tm.submit(square, 5)
    assert handle.result(timeout=WAIT) == 25
    for n in range(3):
        tm.submit(square, n).result(timeout=WAIT)  # handles dropped at once
    gc.collect()
    tick = tm.register_task("tick", abs, 0)  # held: it stays, and its end reads the let-go
    tm.future(tick).result(timeout=WAIT)
    assert tm.get_task_result(handle) == 25
    assert tm.get_metrics()["forgotten_tasks"] == 3


def test_the_metrics_count_registered_and_forgotten(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(keep_finished=1)
    for n in range(4):
        tm.submit(square, n).result(timeout=WAIT)
    gc.collect()
    tick = tm.register_task("tick", abs, 0)
    tm.future(tick).result(timeout=WAIT)
    metrics = tm.get_metrics()
    assert (metrics["registered_tasks"], metrics["forgotten_tasks"]) == (5, 3)
    assert metrics["total_tasks"] == 2  # the newest of the four, and tick


def test_handles_across_threads(tm: TaskManager) -> None:
    handles: list[TaskHandle[int]] = []
    lock = threading.Lock()

    def submit_some() -> None:
        for n in range(50):
            handle = tm.submit(square, n)
            with lock:
                handles.append(handle)

    threads = [threading.Thread(target=submit_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(h.result(timeout=WAIT) for h in handles) == sorted(
        n * n for n in range(50) for _ in range(4)
    )


async def blocker(flag: str) -> None:
    """Returns at once if ``flag`` exists, else waits until it is cancelled."""
    if not os.path.exists(flag):
        await asyncio.Event().wait()


def test_a_handle_argument_across_a_journal_restart(tmp_path: Path) -> None:
    """The journal keeps the reference, not the value: after a restart the waiting task
    gets its input's result, read back from the journal."""
    journal, flag = tmp_path / "tasks.sqlite", tmp_path / "go"
    with TaskManager(journal=journal) as tm:
        six = tm.submit(square, 6)
        assert six.result(timeout=WAIT) == 36
        gate = tm.submit(blocker, str(flag))
        waiting = tm.options(dependencies=[gate], key="dependent").submit(label, six, prefix="=")
        assert waiting.status is TaskStatus.WAITING
    flag.touch()  # the stop cancelled the blocker: the next run runs it again, and it returns
    with TaskManager(journal=journal) as again:
        task_id = again.register_task("again", label, "ignored", key="dependent")
        assert again.future(task_id).result(timeout=WAIT) == "=36"


@pytest.mark.slow
def test_a_handle_argument_on_the_process_executor(tm: TaskManager) -> None:
    parts = [tm.submit(square, n) for n in range(3)]
    in_a_worker = tm.options(executor_type="process").submit(total, parts)
    assert in_a_worker.result(timeout=WAIT) == 5
    assert tm.options(executor_type="process").submit(square, 4).then(label).result(WAIT) == "16"


class Wrapper:
    def __init__(self, inner: object) -> None:
        self.inner = inner


def unwrap(wrapper: Wrapper) -> object:
    return wrapper.inner


def test_a_handle_that_cannot_be_replaced_is_refused_clearly(tmp_path: Path) -> None:
    with TaskManager(journal=tmp_path / "tasks.sqlite") as tm:
        six = tm.submit(square, 6)
        with pytest.raises(TypeError, match=r"TaskHandle cannot be pickled.*handle\.id"):
            tm.submit(unwrap, Wrapper(six))  # inside an object: not looked into
        assert [t.name for t in tm.get_all_tasks()] == ["square"]  # nothing registered


def test_register_task_takes_handles_as_dependencies_and_arguments(tm: TaskManager) -> None:
    four = tm.submit(square, 2)
    task_id = tm.register_task("label", label, four, dependencies=[four], kwargs={"prefix": "="})
    assert tm.future(task_id).result(timeout=WAIT) == "=4"
