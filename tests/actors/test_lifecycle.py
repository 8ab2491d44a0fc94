"""Lifecycles without races: systems and managers move through explicit states.

Each test is a defect of the first round, reproduced there: a scheduler restart that
deadlocked with pool threads, registrations lost to a concurrent stop, a dead system
that accepted work, a manager that rewrote its shared system and cancelled another
manager's tasks, a stop that never returned, and a stop from inside a task that hung
the interpreter at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from actors import (
    ActorSystem,
    TaskCancellationError,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    messages,
)
from actors.core.lifecycle import State

from .conftest import WAIT


def test_scheduler_restarts_while_pool_threads_finish_attempts_never_deadlock() -> None:
    # The first round's scheduler took the store's lock then the ready queue's in its
    # on_start while pool threads took them the other way round. Now the scheduler owns
    # its queues (no lock) and the store's lock is innermost: crash it again and again
    # in the middle of a busy run, with the GIL switching as often as it can.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    tm = TaskManager(max_concurrent_tasks=4)
    try:
        tm.start_sync()
        tm.system.faults.arm("scheduler.receive", times=5)
        ids = [tm.register_task(f"t{n}", abs, -n) for n in range(1_000)]
        assert [tm.future(t).result(timeout=WAIT * 2) for t in ids] == list(range(1_000))
        assert tm.system.faults.hits("scheduler.receive") == 5
    finally:
        sys.setswitchinterval(switch)
        tm.stop_sync(timeout=WAIT)


@pytest.mark.parametrize("trial", range(10))
def test_registration_racing_stop_loses_no_task(trial: int) -> None:
    tm = TaskManager(max_concurrent_tasks=2)
    tm.start_sync()
    accepted: list[str] = []
    refused: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(5, timeout=WAIT)

    def register() -> None:
        go.wait()
        for n in range(200):
            try:
                task_id = tm.register_task(f"r{n}", abs, -n)
            except RuntimeError as error:
                with lock:
                    refused.append(error)
                return
            with lock:
                accepted.append(task_id)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    go.wait()
    tm.stop_sync(timeout=WAIT)
    for thread in threads:
        thread.join(WAIT)
    # Every id handed out reached a final state; every later call was refused, clearly.
    for task_id in accepted:
        future = tm.future(task_id)
        assert future.done()
        assert tm.get_task_status(task_id) in (TaskStatus.COMPLETED, TaskStatus.CANCELLED)
    assert all("stopp" in str(error) for error in refused)


def test_a_shut_down_system_refuses_work() -> None:
    system = ActorSystem()
    tm = system.task_manager
    system.shutdown()
    assert system.state is State.STOPPED
    assert not system.running
    assert not tm.is_running
    with pytest.raises(RuntimeError, match="is stopped"):
        tm.register_task("late", abs, -1)
    with pytest.raises(RuntimeError, match="is stopped"):
        system.submit(messages.SubmitTask("late", abs, args=(-1,)))
    with pytest.raises(RuntimeError, match="not running"):
        _ = system.scheduler
    assert tm.get_all_tasks() == []


@pytest.mark.slow  # seconds of real waiting
def test_a_system_whose_tree_gave_up_fails_its_tasks_and_refuses_work(
    log_events: list[dict[str, Any]],
) -> None:
    release = threading.Event()
    system = ActorSystem(max_concurrent_tasks=2, keep_finished=None)
    tm = system.task_manager
    try:
        tm.start_sync()
        running = tm.register_task("running", release.wait, WAIT)
        assert tm.system.scheduler.ask(messages.GetStatus(running), timeout=WAIT) in (
            TaskStatus.PENDING,
            TaskStatus.RUNNING,
        )
        # Every message now crashes the scheduler: restarted past its intensity (10 in
        # 10 s), the root supervisor gives up.
        system.faults.arm("scheduler.receive", times=10_000)
        waiting: list[str] = []
        deadline = time.monotonic() + WAIT
        while system.state is State.RUNNING and time.monotonic() < deadline:
            try:
                waiting.append(tm.register_task("w", abs, -1, dependencies=[running]))
            except RuntimeError:
                break
        assert system.state is State.FAILED
        for task_id in [running, *waiting]:
            with pytest.raises(TaskExecutionError, match="actor system actors failed"):
                tm.future(task_id).result(timeout=WAIT)
        with pytest.raises(RuntimeError, match="is failed"):
            tm.register_task("after", abs, -1)
        assert not tm.is_running
        assert any(e["event"] == "system.failed" for e in log_events)
    finally:
        release.set()
        system.shutdown(wait_for_tasks=WAIT)
    assert system.state is State.FAILED  # shutting a failed system down keeps the verdict


def test_a_manager_never_changes_its_systems_settings() -> None:
    with ActorSystem(max_concurrent_tasks=8) as system:
        tm = TaskManager(system=system)
        assert system.max_concurrent_tasks == tm.max_concurrent_tasks == 8
        together = threading.Barrier(8, timeout=WAIT)
        ids = [tm.register_task(f"t{n}", together.wait) for n in range(8)]
        assert sorted(tm.future(t).result(timeout=WAIT) for t in ids) == list(range(8))
        with pytest.raises(ValueError, match="cannot change its system's settings"):
            TaskManager(system=system, max_concurrent_tasks=4)
        tm.stop_sync(timeout=WAIT)


def test_stopping_one_manager_cancels_only_its_own_tasks() -> None:
    release = threading.Event()
    with ActorSystem(max_concurrent_tasks=4) as system:
        first, second = TaskManager(system=system), TaskManager(system=system)
        first.start_sync()
        second.start_sync()
        mine = first.register_task("mine", release.wait, WAIT)
        theirs = second.register_task("theirs", release.wait, WAIT)
        queued = second.register_task("queued", abs, -5, dependencies=[theirs])
        first.stop_sync(timeout=0.2)  # "mine" is stuck in a C-level wait: abandoned
        assert first.state is State.STOPPED
        assert first.get_task_status(mine) is TaskStatus.CANCELLED
        assert second.is_running
        release.set()
        assert second.future(theirs).result(timeout=WAIT) is True
        assert second.future(queued).result(timeout=WAIT) == 5
        with pytest.raises(RuntimeError, match="is stopped"):
            first.register_task("x", abs, -1)
        second.register_task("still fine", abs, -1)
        second.stop_sync(timeout=WAIT)


def stubborn_thread(release: threading.Event, entered: threading.Event) -> None:
    entered.set()
    while not release.is_set():
        try:  # noqa: SIM105 - the plain form a user writes
            release.wait(0.02)
        except BaseException:  # noqa: BLE001 - swallows its interruption on purpose
            pass


async def stubborn_coroutine(release: threading.Event, entered: threading.Event) -> None:
    entered.set()
    while not release.is_set():
        with contextlib.suppress(asyncio.CancelledError):  # and its cancellation
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("func", [stubborn_thread, stubborn_coroutine])
def test_stop_returns_within_its_timeout_and_abandons_what_still_runs(
    func: Callable[..., Any], log_events: list[dict[str, Any]]
) -> None:
    release, entered = threading.Event(), threading.Event()
    tm = TaskManager()
    try:
        task_id = tm.register_task("stubborn", func, release, entered)
        tm.start_sync()
        assert entered.wait(WAIT)
        began = time.monotonic()
        tm.stop_sync(timeout=0.3)
        took = time.monotonic() - began
        assert took < 0.3 + 2.0, f"stop(timeout=0.3) took {took:.2f}s"  # not forever
        assert tm.get_task_status(task_id) is TaskStatus.CANCELLED
        with pytest.raises(TaskCancellationError):
            tm.future(task_id).result(timeout=WAIT)
        abandoned = [e for e in log_events if e["event"] == "task.abandoned"]
        assert [e["task_id"] for e in abandoned] == [task_id]
        assert abandoned[0]["level"] == "warning"
    finally:
        release.set()  # the abandoned work ends; its daemon thread with it


@pytest.mark.slow  # the abandoned sleep is waited out at teardown
def test_stop_does_not_wait_for_a_long_sleep_past_its_timeout() -> None:
    entered = threading.Event()

    def sleeper() -> None:
        entered.set()
        time.sleep(3)  # one C call: the interruption lands only when it returns

    tm = TaskManager()
    tm.register_task("sleeper", sleeper)
    tm.start_sync()
    assert entered.wait(WAIT)
    began = time.monotonic()
    tm.stop_sync(timeout=0.2)
    assert time.monotonic() - began < 2.0


def test_stop_from_inside_a_coroutine_task_lets_the_interpreter_exit() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from actors import TaskManager

        async def main():
            tm = TaskManager()

            async def stop_me():
                await tm.stop(timeout=2)

            task_id = tm.register_task("stopper", stop_me)
            await tm.start()
            try:
                await tm.execute_task(task_id)
            except Exception as error:  # the stop cancels the task that asked for it
                print("task ended:", type(error).__name__)
            while tm.state.value != "stopped":
                await asyncio.sleep(0.01)
            print("stopped")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "stopped"


def test_a_coroutine_task_that_stops_its_manager_leaves_no_traceback() -> None:
    # The stop cancels the very task that awaits it; the stop itself goes on to its end
    # on its own thread, and nothing is left to raise there.
    script = textwrap.dedent(
        """
        import asyncio, threading
        from actors import TaskManager

        async def main():
            tm = TaskManager()

            async def stop_me():
                await tm.stop(timeout=20)
                return "after stop"

            async with tm:
                task_id = tm.register_task("stopper", stop_me)
                await tm.wait([task_id], timeout=20)
            stoppers = [t for t in threading.enumerate() if t.name == "task-manager-stop"]
            for thread in stoppers:
                await asyncio.to_thread(thread.join, 20)
                assert not thread.is_alive(), "the stop never ended"
            print(tm.get_task_status(task_id).name, tm.state.value)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.split() in (["CANCELLED", "stopped"], ["COMPLETED", "stopped"])


@pytest.mark.slow  # seconds of real waiting
def test_stop_from_inside_a_thread_task_returns() -> None:
    tm = TaskManager()
    stopped = threading.Event()

    def stop_me() -> str:
        tm.stop_sync(timeout=2)
        stopped.set()
        return "after stop"

    task_id = tm.register_task("stopper", stop_me)
    tm.start_sync()
    assert stopped.wait(WAIT)
    assert tm.state is State.STOPPED
    assert tm.get_task_status(task_id) is TaskStatus.CANCELLED  # stopping cancels it too
