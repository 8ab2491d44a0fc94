"""A finished task is kept while the program holds its id; the others, among the newest
``keep_finished``. The natural bulk code (register many, then wait on them) works with the
default settings, and a program that drops its ids stays flat in memory."""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import TaskManager, TaskNotFoundError, TaskStatus
from actors.core.retention import TaskId
from actors.core.task import TERMINAL

from .conftest import WAIT


def finished(tm: TaskManager) -> int:
    return len(tm.get_tasks_by_status(TaskStatus.COMPLETED))


def settle(tm: TaskManager) -> None:
    """Run one more task to its end: the store reads the ids let go at a task's end."""
    gc.collect()
    tm.future(tm.register_task("tick", abs, 0)).result(timeout=WAIT)


def test_a_held_id_keeps_its_finished_task(make_manager: Callable[..., TaskManager]) -> None:
    tm = make_manager(keep_finished=2)
    ids = [tm.register_task(f"t{n}", abs, -n) for n in range(20)]
    assert [tm.future(i).result(timeout=WAIT) for i in ids] == list(range(20))
    settle(tm)
    assert [tm.get_task_result(i) for i in ids] == list(range(20))  # all 20 kept
    del ids
    settle(tm)
    assert finished(tm) == 2  # let go: only the newest keep_finished are kept


def test_a_plain_copy_does_not_keep_a_task(make_manager: Callable[..., TaskManager]) -> None:
    tm = make_manager(keep_finished=1)
    copies = [str(tm.register_task(f"t{n}", abs, -n)) for n in range(5)]
    for copy in copies:
        if tm.get_task_status(copy) is not None:
            tm.future(copy).result(timeout=WAIT)
    settle(tm)
    assert finished(tm) == 1
    with pytest.raises(TaskNotFoundError, match=r"forgotten.*keep_finished=1.*hold the returned"):
        tm.future(copies[0])


def test_an_id_let_go_in_another_thread_lets_its_task_go(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(keep_finished=0)
    box = [tm.register_task("t", abs, -1)]
    tm.future(box[0]).result(timeout=WAIT)
    task_id = str(box[0])
    settle(tm)
    assert tm.get_task_status(task_id) is TaskStatus.COMPLETED
    thread = threading.Thread(target=box.clear)
    thread.start()
    thread.join(WAIT)
    settle(tm)
    assert tm.get_task_status(task_id) is None


def test_a_key_gives_out_the_id_the_program_holds(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(keep_finished=0)
    first = tm.register_task("t", abs, -1, key="job")
    assert tm.register_task("t", abs, -1, key="job") is first
    tm.future(first).result(timeout=WAIT)
    plain = str(first)
    del first
    again = tm.register_task("t", abs, -1, key="job")  # held again through its key
    settle(tm)
    assert tm.get_task_result(again) == 1
    del again
    settle(tm)
    assert tm.get_task_status(plain) is None


def test_a_task_id_is_the_plain_id_to_compare_hash_and_serialise(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager()
    task_id = tm.register_task("t", abs, -1)
    assert isinstance(task_id, TaskId)
    plain = str(task_id)
    assert type(plain) is str
    assert task_id == plain
    assert hash(task_id) == hash(plain)
    assert {plain: 1}[task_id] == 1
    assert repr(task_id) == repr(plain)
    assert type(pickle.loads(pickle.dumps(task_id))) is str
    assert json.dumps([task_id]) == json.dumps([plain])
    # A task given the id as an argument or a dependency keeps a plain copy: it does not
    # keep the other task alive.
    other = tm.register_task("o", len, task_id, dependencies=[task_id])
    record = tm.get_task(other)
    assert record is not None
    assert type(record.args[0]) is TaskId  # the argument is the caller's object
    assert type(record.dependencies[0]) is str
    tm.future(other).result(timeout=WAIT)


def test_ids_held_across_a_journal_restart(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    with TaskManager(journal=journal, keep_finished=1) as tm:
        ids = [tm.register_task("abs", abs, -n) for n in range(5)]
        assert [tm.future(i).result(timeout=WAIT) for i in ids] == list(range(5))
        plain = [str(i) for i in ids]
    with TaskManager(journal=journal, keep_finished=1) as again:
        # Read back, nobody holds them: the newest keep_finished are kept.
        assert sum(again.get_task_status(i) is not None for i in plain) == 1


# -- the natural bulk code, with the defaults ------------------------------------------------


def noop() -> None:
    return None


@pytest.mark.slow
def test_thirty_thousand_futures_with_the_defaults() -> None:
    with TaskManager() as tm:
        ids = [tm.register_task("noop", noop) for _ in range(30_000)]
        assert [tm.future(i).result(timeout=WAIT) for i in ids] == [None] * 30_000


@pytest.mark.slow
def test_thirty_thousand_gathered_and_waited_with_the_defaults() -> None:
    async def main() -> None:
        async with TaskManager() as tm:
            ids = [tm.register_task("noop", noop) for _ in range(30_000)]
            results = await asyncio.gather(*(tm.execute_task(i) for i in ids))
            assert results == [None] * 30_000
            done, pending = await tm.wait(ids)
            assert (len(done), pending) == (30_000, set())
            seen = [i async for i in tm.as_completed(ids)]
            assert len(seen) == 30_000

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.timeout(240)  # traced allocations are slow
def test_a_program_that_drops_its_ids_stays_flat_in_memory() -> None:
    """100,000 tasks in batches whose ids are dropped: traced memory within 8 MB."""
    with TaskManager(max_concurrent_tasks=4) as tm:  # the default keep_finished
        tracemalloc.start()
        try:
            sizes = []
            for _ in range(10):
                ids = [tm.register_task("noop", noop) for _ in range(10_000)]
                tm.future(ids[-1]).result(timeout=WAIT)
                for task_id in ids:  # the few still running (a future each costs a lock)
                    if tm.get_task_status(task_id) not in TERMINAL:
                        tm.future(task_id).result(timeout=WAIT)
                del ids
                settle(tm)
                sizes.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
    assert sizes[-1] - sizes[0] < 8 * 2**20, [s // 2**20 for s in sizes]
