"""Exit safety, Ctrl-C, BaseException in tasks, raising subscribers, producers, leaks."""

from __future__ import annotations

import gc
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from typing import Any

import pykka
import pytest

from actors import (
    ActorSystem,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    messages,
)
from supervision import Restart
from tests.actors.conftest import Collector

from .conftest import WAIT


def run_program(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_program_that_forgets_stop_still_exits() -> None:
    started = time.monotonic()
    done = run_program(
        """
        import asyncio, time
        from actors import TaskManager

        def slow():
            while True:
                time.sleep(0.01)

        async def main():
            tm = TaskManager()
            print(await tm.execute_task(tm.register_task("add", sum, [1, 2])))
            tm.register_task("slow", slow)        # still running at exit
            tm.register_task("coro", asyncio.sleep, 60)

        asyncio.run(main())
        """
    )
    assert (done.returncode, done.stdout.strip()) == (0, "3"), done.stderr
    assert time.monotonic() - started < 20


def test_ctrl_c_while_tasks_run_stops_cleanly() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import asyncio, time
                from actors import TaskManager, current_task

                def busy():
                    while not current_task().cancelled:
                        time.sleep(0.01)

                async def main():
                    async with TaskManager() as tm:
                        ids = [tm.register_task(f"b{n}", busy) for n in range(3)]
                        print("running", flush=True)
                        await asyncio.gather(*(tm.execute_task(i) for i in ids))

                try:
                    asyncio.run(main())
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.strip() == "interrupted"


class Fatal(BaseException):
    pass


def test_a_task_raising_base_exception_does_not_take_the_runtime_down() -> None:
    def fatal() -> None:
        raise Fatal("not an Exception")

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def async_fatal() -> None:
        raise Fatal("in a coroutine")

    tm = TaskManager()
    try:
        ids = [
            tm.register_task(n, f) for n, f in [("a", fatal), ("b", interrupt), ("c", async_fatal)]
        ]
        for task_id in ids:
            with pytest.raises(TaskExecutionError) as caught:
                tm.future(task_id).result(timeout=WAIT)
            assert isinstance(caught.value.original_error, Fatal | KeyboardInterrupt)
        after = tm.register_task("after", abs, -5)
        assert tm.future(after).result(timeout=WAIT) == 5
        assert tm.system.scheduler.is_alive()
    finally:
        tm.stop_sync(timeout=WAIT)


class Grumpy(pykka.ThreadingActor):
    """A subscriber that fails on its first event."""

    def on_receive(self, message: Any) -> None:
        raise RuntimeError("I do not like events")


def test_a_failing_subscriber_does_not_break_the_manager() -> None:
    events: queue.Queue[Any] = queue.Queue()
    with ActorSystem() as system:
        grumpy = system.spawn(Grumpy, name="grumpy", restart=Restart.TEMPORARY)
        good = system.spawn(Collector, events, name="good")
        system.scheduler.ask(messages.Subscribe(grumpy), timeout=WAIT)
        system.scheduler.ask(messages.Subscribe(good), timeout=WAIT)
        tm = system.task_manager
        ids = [tm.register_task(f"t{n}", abs, -n) for n in range(20)]
        assert [tm.future(t).result(timeout=WAIT) for t in ids] == list(range(20))
        assert grumpy.actor_stopped.wait(WAIT)
        succeeded = set()
        while len(succeeded) < 20:
            event = events.get(timeout=WAIT)
            if isinstance(event, messages.TaskSucceeded):
                succeeded.add(event.task_id)
        assert succeeded == set(ids)


def test_many_producers_and_cancellers() -> None:
    tm = TaskManager(max_concurrent_tasks=8)
    ids: list[list[str]] = [[] for _ in range(8)]
    cancelled: set[str] = set()
    barrier = threading.Barrier(10, timeout=WAIT)
    lock = threading.Lock()

    def produce(n: int) -> None:
        barrier.wait()
        for k in range(300):
            ids[n].append(tm.register_task(f"p{n}-{k}", abs, -k))

    def cancel(offset: int) -> None:
        barrier.wait()
        for _ in range(200):
            for chunk in ids:
                if len(chunk) > offset and tm.cancel_task_sync(chunk[offset]):
                    with lock:
                        cancelled.add(chunk[offset])
            offset += 1

    try:
        tm.start_sync()
        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        threads += [threading.Thread(target=cancel, args=(k * 7,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        all_ids = [t for chunk in ids for t in chunk]
        assert len(all_ids) == len(set(all_ids)) == 2400
        for task_id in all_ids:
            tm.future(task_id).exception(timeout=WAIT)  # waits for the end, raises nothing
            final = tm.get_task_status(task_id)
            assert final is (TaskStatus.CANCELLED if task_id in cancelled else TaskStatus.COMPLETED)
    finally:
        tm.stop_sync(timeout=WAIT)


def test_start_stop_cycles_leave_nothing_behind() -> None:
    before = set(threading.enumerate())
    tracemalloc.start()
    memory: dict[int, int] = {}
    for cycle in range(100):
        tm = TaskManager(max_concurrent_tasks=2)
        assert tm.future(tm.register_task("c", abs, -cycle)).result(timeout=WAIT) == cycle
        tm.stop_sync(timeout=WAIT)
        assert pykka.ActorRegistry.get_all() == []
        # Every thread of the cycle is gone or on its way out (the shared timer thread
        # exits once no timer is pending): none accumulates across cycles.
        for thread in set(threading.enumerate()) - before:
            thread.join(WAIT)
        assert set(threading.enumerate()) - before == set()
        if cycle in (20, 99):
            gc.collect()
            memory[cycle] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # 80 more cycles may not keep what they made (a leak of one task record or one
    # actor per cycle would show as tens of KB here).
    assert memory[99] - memory[20] < 64 * 1024
