"""Waiting for many tasks: wait, as_completed, execute_task as a wait, and `with`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from actors import TaskManager, TaskNotFoundError, TaskStatus
from actors.core.waiting import LoopWaker

from .conftest import WAIT, Gate, run


def fail() -> None:
    raise ValueError("bad")


@pytest.mark.parametrize(
    "all_completed", ["ALL_COMPLETED", asyncio.ALL_COMPLETED, concurrent.futures.ALL_COMPLETED]
)
def test_wait_for_all(tm: TaskManager, all_completed: str) -> None:
    async def main() -> tuple[set[str], set[str], list[str]]:
        ids = [tm.register_task(f"t{n}", abs, -n) for n in range(5)]
        done, pending = await tm.wait(ids, return_when=all_completed)
        return done, pending, ids

    done, pending, ids = run(main())
    assert done == set(ids)
    assert pending == set()


def test_wait_for_the_first_and_time_out(tm: TaskManager, gate: Gate) -> None:
    async def main() -> None:
        held = tm.register_task("held", gate.hold, "h")
        quick = tm.register_task("quick", abs, -1)
        done, pending = await tm.wait([held, quick], return_when="FIRST_COMPLETED")
        assert (done, pending) == ({quick}, {held})
        done, pending = await tm.wait([held], timeout=0.05)
        assert (done, pending) == (set(), {held})
        assert tm.get_task_status(held) is TaskStatus.RUNNING  # a timeout leaves it alone
        gate.open()
        done, pending = await tm.wait([held, quick])
        assert (done, pending) == ({held, quick}, set())

    run(main())


def test_wait_for_the_first_exception(tm: TaskManager, gate: Gate) -> None:
    async def main() -> None:
        held = tm.register_task("held", gate.hold, "h")
        broken = tm.register_task("broken", fail)
        done, pending = await tm.wait([held, broken], return_when="FIRST_EXCEPTION")
        assert (done, pending) == ({broken}, {held})
        gate.open()

    run(main())


def test_wait_refuses_bad_input(tm: TaskManager) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="return_when must be one of"):
            await tm.wait([], return_when="SOMETIMES")
        with pytest.raises(TypeError, match="task_ids must be a list of task ids"):
            await tm.wait("abc")
        with pytest.raises(TaskNotFoundError):
            await tm.wait(["nope"])
        with pytest.raises(ValueError, match="timeout must be"):
            await tm.wait([], timeout=float("nan"))

    run(main())


def test_as_completed_yields_ids_in_the_order_they_end(tm: TaskManager) -> None:
    first, second = threading.Event(), threading.Event()

    async def main() -> list[str]:
        slow = tm.register_task("slow", second.wait, WAIT)
        fast = tm.register_task("fast", first.wait, WAIT)
        broken = tm.register_task("broken", fail)
        order = []
        async for task_id in tm.as_completed([slow, fast, broken]):
            order.append(tm.get_task(task_id).name)  # type: ignore[union-attr]
            if task_id == broken:
                first.set()
            elif task_id == fast:
                second.set()
        return order

    assert run(main()) == ["broken", "fast", "slow"]


def test_as_completed_times_out(tm: TaskManager, gate: Gate) -> None:
    async def main() -> None:
        held = tm.register_task("held", gate.hold, "h")
        with pytest.raises(TimeoutError):
            async for _ in tm.as_completed([held], timeout=0.05):
                pass
        gate.open()

    run(main())


def test_cancelling_the_awaiter_of_execute_task_leaves_the_task_alone(
    tm: TaskManager, gate: Gate
) -> None:
    async def main() -> None:
        held = tm.register_task("held", gate.hold, "h")
        waiter = asyncio.ensure_future(tm.execute_task(held))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert tm.get_task_status(held) in (TaskStatus.PENDING, TaskStatus.RUNNING)
        gate.open()
        assert await tm.execute_task(held) == "h"

    run(main())


def test_a_plain_with_block_starts_and_stops_the_manager() -> None:
    with TaskManager() as tm:
        assert tm.is_running
        task_id = tm.register_task("x", abs, -2)
        assert tm.future(task_id).result(timeout=WAIT) == 2
    assert tm.state.value == "stopped"


def test_parents_waiting_for_their_children_on_every_slot_finish(
    make_manager: Callable[..., TaskManager],
) -> None:
    # Two slots, two parents, each waiting for a child it registers: the first round
    # deadlocked (the children never got a slot, nor a pool thread).
    tm = make_manager(max_concurrent_tasks=2)
    both_waiting = threading.Barrier(2, timeout=WAIT)

    def parent(n: int) -> int:
        child = tm.register_task(f"child-{n}", abs, -n)
        both_waiting.wait()  # both slots are taken by parents now
        return int(tm.future(child).result(timeout=WAIT)) * 10

    ids = [tm.register_task(f"parent-{n}", parent, n) for n in (1, 2)]
    assert [tm.future(t).result(timeout=WAIT * 2) for t in ids] == [10, 20]
    assert tm.get_metrics()["executors"]["thread_pool"]["busy"] == 0


def test_coroutine_parents_awaiting_their_children_on_every_slot_finish(
    make_manager: Callable[..., TaskManager],
) -> None:
    async def main() -> list[int]:
        async with TaskManager(max_concurrent_tasks=2) as tm:

            async def parent(n: int) -> int:
                child = tm.register_task(f"child-{n}", abs, -n)
                return int(await tm.execute_task(child)) * 10

            async def waiter(n: int) -> int:
                kids = [tm.register_task(f"kid-{n}-{k}", abs, -k) for k in range(3)]
                done, _ = await tm.wait(kids)
                return len(done)

            ids = [tm.register_task(f"parent-{n}", parent, n) for n in (1, 2)]
            ids += [tm.register_task(f"waiter-{n}", waiter, n) for n in (1, 2)]
            return [await tm.execute_task(t) for t in ids]

    assert run(main()) == [10, 20, 3, 3]


def test_one_slot_is_enough_for_a_parent_and_its_child(
    make_manager: Callable[..., TaskManager],
) -> None:
    # The child can only start if the waiting parent gave its one slot back.
    tm = make_manager(max_concurrent_tasks=1)

    def parent() -> str:
        child = tm.register_task("child", str.upper, "child ran")
        return str(tm.future(child).result(timeout=WAIT))

    assert tm.future(tm.register_task("parent", parent)).result(timeout=WAIT) == "CHILD RAN"


def test_waiters_on_the_tasks_own_loop_are_woken_without_a_cross_thread_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        calls = [0]
        threadsafe = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(getattr(callback, "__self__", None), LoopWaker):
                calls[0] += 1  # a waiter woken from another thread
            return threadsafe(callback, *args, **kwargs)

        async def noop() -> None:
            return None

        async with TaskManager(max_concurrent_tasks=50) as tm:
            ids = [tm.register_task(f"c{n}", noop) for n in range(50)]
            monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
            await asyncio.gather(*(tm.execute_task(t) for t in ids))
            monkeypatch.undo()
        return calls[0]

    # Coroutine tasks ran on this loop: their outcomes reached their waiters directly.
    assert run(main()) == 0


def test_outcomes_from_other_threads_wake_a_loop_once_per_burst(
    make_manager: Callable[..., TaskManager], gate: Gate
) -> None:
    tm = make_manager(max_concurrent_tasks=4)

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        wakes = [0]
        threadsafe = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            wakes[0] += 1
            return threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        try:
            ids = [tm.register_task(f"t{n}", gate.hold, str(n)) for n in range(200)]
            waiting = asyncio.gather(*(tm.execute_task(t) for t in ids))
            gate.open()
            await waiting
        finally:
            del loop.call_soon_threadsafe  # type: ignore[method-assign]
        return wakes[0], len(ids)

    wakes, tasks = run(main())
    assert wakes < tasks  # batched: far fewer wake-ups than outcomes
