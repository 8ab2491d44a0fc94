"""Embedding in an application: its context variables reach its tasks, its memory stays flat."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
from collections.abc import Callable

import pytest
import structlog

from actors import (
    ActorSystem,
    AsyncExecutor,
    TaskDependencyError,
    TaskExecutionError,
    TaskManager,
    TaskNotFoundError,
    TaskStatus,
    current_task,
    messages,
)
from supervision._timer import timer_service

from .conftest import WAIT, Gate, run

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def read_request_id() -> str | None:
    return request_id.get()


async def read_request_id_async() -> str | None:
    return request_id.get()


def test_tasks_run_in_the_context_current_at_registration(tm: TaskManager) -> None:
    token = request_id.set("req-1")
    try:
        in_thread = tm.register_task("thread", read_request_id)
        in_loop = tm.register_task("coroutine", read_request_id_async)
        returned = tm.register_task("returned", lambda: read_request_id_async())
    finally:
        request_id.reset(token)
    outside = tm.register_task("outside", read_request_id)
    results = [tm.future(t).result(timeout=WAIT) for t in (in_thread, in_loop, returned, outside)]
    assert results == ["req-1", "req-1", "req-1", None]


def test_each_attempt_gets_a_fresh_copy_and_nothing_leaks_out(tm: TaskManager) -> None:
    seen: list[tuple[int, str | None]] = []

    def meddle() -> str:
        seen.append((current_task().attempt, request_id.get()))
        request_id.set("changed by the task")
        if current_task().attempt == 1:
            raise RuntimeError("again")
        return "done"

    token = request_id.set("original")
    try:
        task_id = tm.register_task("meddle", meddle, max_retries=1, retry_delay=0)
    finally:
        request_id.reset(token)
    assert tm.future(task_id).result(timeout=WAIT) == "done"
    assert seen == [(1, "original"), (2, "original")]  # the retry did not see attempt 1's set
    assert request_id.get() is None


def test_structlog_context_variables_reach_the_task(tm: TaskManager) -> None:
    structlog.contextvars.bind_contextvars(request="r-9")
    try:
        task_id = tm.register_task("ctx", structlog.contextvars.get_contextvars)
    finally:
        structlog.contextvars.clear_contextvars()
    assert tm.future(task_id).result(timeout=WAIT) == {"request": "r-9"}


def test_finished_tasks_past_keep_finished_are_forgotten(
    make_manager: Callable[..., TaskManager],
) -> None:
    tm = make_manager(keep_finished=3)
    # Plain copies of the ids: the program holds no TaskId, so nothing keeps the tasks.
    early = str(tm.register_task("early", abs, -1))
    early_future = tm.future(early)  # handed out before it is forgotten
    ids, futures = [], []
    for n in range(10):
        ids.append(str(tm.register_task(f"t{n}", abs, -n)))
        futures.append(tm.future(ids[-1]))
    assert [f.result(timeout=WAIT) for f in futures] == list(range(10))
    assert early_future.result(timeout=WAIT) == 1
    assert len(tm.get_all_tasks()) == 3
    assert tm.get_task(early) is None
    assert tm.get_task_status(ids[0]) is None
    assert tm.get_task_result(ids[-1]) == 9
    with pytest.raises(TaskNotFoundError, match="keep_finished=3"):
        tm.future(early)
    assert tm.get_metrics()["total_tasks"] == 3


def test_a_finished_attempt_leaves_nothing_for_the_cyclic_collector(tm: TaskManager) -> None:
    # An attempt's task actor, mailbox and context are freed by reference counting when
    # it ends: a service running millions of tasks must not lean on the cyclic collector
    # (left to it, each attempt was 17 objects and the collections ran 9x as often).
    warm = tm.register_task("warm", abs, -1)
    tm.future(warm).result(timeout=WAIT)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds goes to gc.garbage
    try:
        ids = [tm.register_task(f"t{n}", abs, -n) for n in range(200)]
        assert [tm.future(i).result(timeout=WAIT) for i in ids] == list(range(200))
        gc.collect()
        # Only the task system's own objects: a library loaded by another test (a Dask
        # client's loop, say) may leave cycles of its own meanwhile.
        ours = [o for o in gc.garbage if type(o).__module__.startswith("actors")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not ours, f"{len(ours)} objects of ours left in reference cycles by 200 tasks"


def test_a_finished_task_is_kept_while_unfinished_tasks_depend_on_it(
    make_manager: Callable[..., TaskManager], gate: Gate
) -> None:
    tm = make_manager(keep_finished=1)
    root = str(tm.register_task("root", abs, -1))  # a plain copy: only child keeps it
    hold = tm.register_task("hold", gate.hold, "h")
    child = tm.register_task("child", abs, -2, dependencies=[root, hold])
    assert tm.future(root).result(timeout=WAIT) == 1
    gate.wait_arrivals(1)
    for n in range(5):  # push root past keep_finished
        tm.future(tm.register_task(f"x{n}", abs, -n)).result(timeout=WAIT)
    assert tm.get_task_status(root) is TaskStatus.COMPLETED  # child still needs it
    assert tm.forget(root) is False
    gate.open()
    assert tm.future(child).result(timeout=WAIT) == 2
    assert tm.get_task_status(root) is None  # forgotten once child finished


def test_forget_drops_a_finished_task_only(tm: TaskManager, gate: Gate) -> None:
    done = tm.register_task("done", abs, -1)
    tm.future(done).result(timeout=WAIT)
    running = tm.register_task("running", gate.hold, "r")
    gate.wait_arrivals(1)
    assert tm.forget(running) is False
    assert tm.forget("unknown") is False
    assert tm.forget(done) is True
    assert tm.get_task(done) is None
    assert tm.forget(done) is False
    again = tm.register_task("again", abs, -3, task_id=done)  # the id is free again
    assert tm.future(again).result(timeout=WAIT) == 3
    gate.open()


def test_keep_finished_is_a_system_setting_a_manager_reads() -> None:
    with ActorSystem(keep_finished=5) as system:
        assert TaskManager(system=system).system.keep_finished == 5
        with pytest.raises(ValueError, match="keep_finished=7 differs"):
            TaskManager(system=system, keep_finished=7)
    with pytest.raises(ValueError, match="keep_finished must be an integer >= 0"):
        ActorSystem(keep_finished=-1, autostart=False)


def test_stop_copes_with_tasks_forgotten_while_it_cancels(
    make_manager: Callable[..., TaskManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep lists the unfinished tasks, then cancels them one by one; meanwhile a
    # listed task may end and be forgotten (past keep_finished). Make that happen to one.
    tm = make_manager(keep_finished=2)
    tm.register_task("x", abs, -1)
    tm.start_sync()
    close = tm.system.store.close
    monkeypatch.setattr(
        tm.system.store, "close", lambda *a, **k: ["ended-and-forgotten", *close(*a, **k)]
    )
    tm.stop_sync(timeout=WAIT)  # raised TaskNotFoundError before
    assert tm.state.value == "stopped"


def test_messages_name_tasks_by_name_and_id(tm: TaskManager) -> None:
    fetch = tm.register_task("fetch", int, "not a number")
    report = tm.register_task("report", abs, -1, dependencies=[fetch])
    with pytest.raises(TaskExecutionError) as failed:
        tm.future(fetch).result(timeout=WAIT)
    assert str(failed.value).startswith(f"task 'fetch' ({fetch}) failed: ValueError")
    with pytest.raises(TaskDependencyError) as blocked:
        tm.future(report).result(timeout=WAIT)
    assert str(blocked.value) == (
        f"task 'report' ({report}) cannot run: its dependency 'fetch' ({fetch}) FAILED"
    )
    assert blocked.value.details["dependency_name"] == "fetch"


async def on_which_thread() -> int:
    return threading.get_ident()


def test_coroutine_tasks_run_on_the_loop_the_manager_was_started_from() -> None:
    async def main() -> None:
        lock = asyncio.Lock()  # made on the application's loop
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def use_them(n: int) -> int:
            async with lock:
                await queue.put(n)
            return n

        async with TaskManager() as tm:
            ids = [tm.register_task(f"t{n}", use_them, n) for n in range(5)]
            where = tm.register_task("where", on_which_thread)
            _done, pending = await tm.wait([*ids, where])
            assert pending == set()
            assert sorted([await tm.execute_task(t) for t in ids]) == list(range(5))
            assert await tm.execute_task(where) == threading.get_ident()
        assert sorted(queue.get_nowait() for _ in range(5)) == list(range(5))

    run(main())


def test_the_first_execute_task_starts_the_manager_on_its_loop() -> None:
    async def main() -> None:
        tm = TaskManager()
        try:
            task_id = tm.register_task("where", on_which_thread)
            assert await tm.execute_task(task_id) == threading.get_ident()
        finally:
            await tm.stop()

    run(main())


def test_a_manager_started_without_a_loop_keeps_a_loop_thread_of_its_own() -> None:
    with TaskManager() as tm:
        task_id = tm.register_task("where", on_which_thread)
        assert tm.future(task_id).result(timeout=WAIT) != threading.get_ident()


def test_an_async_executor_can_be_pinned_to_a_loop() -> None:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    server = threading.Thread(target=serve, name="application-loop")
    server.start()
    try:
        assert ready.wait(WAIT)
        with TaskManager() as tm:
            pinned = AsyncExecutor(10, loop=loop, name="app")
            task_id = tm.register_task("where", on_which_thread, executor_type=pinned)
            assert tm.future(task_id).result(timeout=WAIT) == server.ident
        assert loop.is_running()  # the manager never stops a loop it was given
    finally:
        loop.call_soon_threadsafe(loop.stop)
        server.join(WAIT)
        loop.close()
    with pytest.raises(TypeError, match="loop must be an asyncio event loop"):
        AsyncExecutor(loop="loop")  # type: ignore[arg-type]


@pytest.mark.parametrize("blocked_by", ["event", "future"])
def test_a_blocked_application_loop_does_not_stop_sync_tasks(blocked_by: str) -> None:
    """Coroutine tasks end on the application's loop, then the application blocks it (a
    long sync call in a handler, ``tm.future(...).result()`` in a coroutine): a sync task
    registered meanwhile still runs. The scheduler is never left waiting on that loop."""

    async def main() -> None:
        async with TaskManager(max_concurrent_tasks=4) as tm:
            for _round in range(3):
                # execute_task resumes in the loop iteration right after the task's end,
                # before anything the end queued on the loop behind it.
                on_loop = tm.register_task("on-loop", on_which_thread)
                assert await tm.execute_task(on_loop) == threading.get_ident()
                ran = threading.Event()
                task_id = tm.register_task("sync", ran.set)
                # The loop is blocked from here until the sync task has run.
                if blocked_by == "event":
                    assert ran.wait(WAIT), "the sync task did not run while the loop was blocked"
                tm.future(task_id).result(timeout=WAIT)
                assert tm.get_task_status(task_id) is TaskStatus.COMPLETED

    asyncio.run(main())


def test_a_blocked_library_loop_does_not_stop_sync_tasks() -> None:
    """The library's own loop hosts the scheduler's slices (it pays, scenario 2), but
    only lends itself: a coroutine task that blocks it (bad practice, but it happens)
    does not keep the scheduler, whose own thread takes the slice back."""
    with TaskManager(max_concurrent_tasks=8) as tm:  # coroutines on the library's loop

        async def quick() -> int:
            return 1

        async def blocker() -> bool:
            await tm.execute_task(tm.register_task("quick", quick))
            ran = threading.Event()
            tm.register_task("sync", ran.set)
            return ran.wait(WAIT)  # blocks the library's loop until the sync task ran

        for _round in range(3):
            assert tm.future(tm.register_task("blocker", blocker)).result(timeout=WAIT * 2)


def test_a_coroutine_task_ends_before_the_application_can_block_its_loop() -> None:
    """A coroutine task's attempt ends in its own last step, not in a callback after it:
    an application that blocks its loop right after that step (here waiting for a sync
    task that needs the coroutine's slot) does not hold up the end."""

    async def main() -> None:
        async with TaskManager(max_concurrent_tasks=1) as tm:
            started, go = asyncio.Event(), asyncio.Event()

            async def holds_the_slot() -> str:
                started.set()
                await go.wait()
                return "done"

            on_loop = tm.register_task("holds-the-slot", holds_the_slot)
            await asyncio.wait_for(started.wait(), WAIT)
            needs_the_slot = tm.register_task("needs-the-slot", abs, -3)
            go.set()
            # The coroutine's last step runs before this coroutine resumes; whatever it
            # queued on the loop (a done callback) would run after the block below.
            await asyncio.sleep(0)
            assert tm.future(needs_the_slot).result(timeout=WAIT) == 3  # blocks the loop
            assert await tm.execute_task(on_loop) == "done"

    asyncio.run(main())


def test_a_closed_application_loop_does_not_hold_up_sync_tasks() -> None:
    loop = asyncio.new_event_loop()
    loop.close()  # the application's loop is gone (asyncio.run ended) without a stop
    with TaskManager(max_concurrent_tasks=2) as tm:
        tm.system.add_executor(AsyncExecutor(loop=loop, name="gone"))
        stuck = tm.register_task("stuck", on_which_thread, executor_type="gone", priority=4)
        fine = tm.register_task("fine", abs, -5)
        assert tm.future(fine).result(timeout=WAIT) == 5
        tm.system.scheduler.ask(messages.Pause(), timeout=WAIT)  # no slice tries it meanwhile
        assert tm.get_task_status(stuck) is TaskStatus.PENDING  # waits for a loop


def test_a_launch_that_fails_leaves_no_timeout_armed() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    timer = timer_service()
    with TaskManager(max_concurrent_tasks=2) as tm:
        tm.system.add_executor(AsyncExecutor(loop=loop, name="gone"))
        armed = timer.pending
        stuck = tm.register_task(
            "stuck", on_which_thread, executor_type="gone", priority=4, timeout=3600.0
        )
        fine = tm.register_task("fine", abs, -5)  # launched after "stuck" was tried
        assert tm.future(fine).result(timeout=WAIT) == 5
        # Each slice tries "stuck" again; once paused (a slice of its own), none does.
        tm.system.scheduler.ask(messages.Pause(), timeout=WAIT)
        assert tm.get_task_status(stuck) is TaskStatus.PENDING
        assert timer.pending == armed  # each launch that failed took its deadline back
