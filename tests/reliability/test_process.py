"""Exit safety, Ctrl-C, BaseException in tasks, raising subscribers, producers, leaks."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pathlib
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
    ProcessExecutor,
    TaskExecutionError,
    TaskManager,
    TaskStatus,
    current_task,
    messages,
)
from supervision import Restart
from tests.actors.conftest import Collector
from tests.actors.test_process_executor import gone_within, running

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


# -- the process executor: a missing __main__ guard, a killed manager, exit --------------------

STUBBORN = """
import os, signal, sys, time
from actors import ProcessExecutor, TaskManager

def stubborn(pid_file):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(60)

def wait_for(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path) or not open(path).read():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
"""


def wait_for_text(path: pathlib.Path, seconds: float = WAIT * 3) -> str:
    """The file's text once it has some (a process writes it: there is nothing to wait on)."""
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} was never written"
        threading.Event().wait(0.02)
    return path.read_text()


def run_script(path: pathlib.Path, *args: str, timeout: float = 60) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=path.parent,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def test_a_script_without_a_main_guard_fails_its_tasks_saying_why(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from actors import TaskManager

            with TaskManager() as tm:
                ids = [tm.register_task("pid", os.getpid, executor_type="process")
                       for _ in range(4)]
                for task_id in ids:
                    try:
                        tm.future(task_id).result(timeout=30)
                    except Exception as error:
                        print(type(error).__name__, error)
            """
        )
    )
    code, out, err, elapsed = run_script(script)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("TaskExecutionError") for line in lines), out
    assert all('under `if __name__ == "__main__":`' in line for line in lines), out
    # Told apart from other start failures (multiprocessing's bootstrapping flag):
    assert all("importing the program's main module started a process" in line for line in lines)
    assert elapsed < 20  # failed, not retried until the result's timeout
    assert "Traceback" not in err  # one line from each worker that tried, no storm
    assert len(err.splitlines()) <= 8, err


def test_workers_that_cannot_start_are_restarted_with_a_backoff(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "fails_in_workers.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, time
            from actors import ProcessExecutor, TaskManager

            if __name__ == "__mp_main__":
                raise RuntimeError("cannot start here")

            if __name__ == "__main__":
                with TaskManager() as tm:
                    executor = ProcessExecutor(2, name="procs")
                    first = tm.register_task("pid", os.getpid, executor_type=executor)
                    try:
                        tm.future(first).result(timeout=30)
                    except Exception as error:
                        print(type(error).__name__, error)
                    time.sleep(3)  # the interval whose restarts are counted
                    later = tm.register_task("pid", os.getpid, executor_type="procs")
                    started = time.monotonic()
                    try:
                        tm.future(later).result(timeout=30)
                    except Exception as error:
                        print(type(error).__name__, round(time.monotonic() - started))
            """
        )
    )
    code, out, err, _ = run_script(script)
    assert code == 0, err
    first, later = out.strip().splitlines()
    assert first.startswith("TaskExecutionError"), out
    assert "exited before it could take a call (exit code 1)" in first
    assert '`if __name__ == "__main__":`' in first
    assert later.startswith("TaskExecutionError"), out
    assert int(later.split()[1]) < 10  # failed at once, not when its result() timed out
    # 2 at the start, then one trial at a time after 0.5, 1, 2, 4 ... s: not a tight loop.
    assert 2 <= err.count("cannot start here") <= 8, err


def test_workers_die_with_a_manager_killed_by_sigkill(tmp_path: pathlib.Path) -> None:
    journal, trail = tmp_path / "tasks.sqlite", tmp_path / "trail"
    script = tmp_path / "manager.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from actors import ActorSystem, ProcessExecutor

            def side_effect(path):
                with open(path, "a") as out:
                    out.write(f"{os.getpid()} start\\n")
                time.sleep(3)
                with open(path, "a") as out:
                    out.write(f"{os.getpid()} end\\n")

            if __name__ == "__main__":
                journal, trail, mode = sys.argv[1:]
                executor = ProcessExecutor(2, name="procs")
                with ActorSystem(journal=journal, executors=[executor]) as system:
                    tm = system.task_manager
                    tm.start_sync()
                    if mode == "first":
                        tm.register_task("effect", side_effect, trail,
                                         executor_type="procs", key="effect")
                        time.sleep(60)  # killed meanwhile
                    else:  # recovered from the journal: the task runs again
                        task_id = tm.get_all_tasks()[0].task_id
                        tm.future(task_id).result(timeout=30)
            """
        )
    )
    manager = subprocess.Popen(
        [sys.executable, str(script), str(journal), str(trail), "first"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        worker = int(wait_for_text(trail).split()[0])
        manager.kill()
        manager.wait(WAIT)
        assert gone_within(worker, WAIT / 2)  # not left to finish its attempt
    finally:
        if manager.poll() is None:
            manager.kill()
        manager.communicate()
    code, _, err, _ = run_script(script, str(journal), str(trail), "again")
    assert code == 0, err
    lines = trail.read_text().splitlines()
    second = lines[1].split()[0]
    assert lines == [f"{worker} start", f"{second} start", f"{second} end"]  # never at once


@pytest.mark.parametrize("ending", ["forgets stop", "stop(timeout=1)", "ctrl-c"])
def test_exit_is_safe_with_a_task_that_ignores_sigterm(tmp_path: pathlib.Path, ending: str) -> None:
    pid_file = tmp_path / "worker.pid"
    script = tmp_path / "stubborn.py"
    script.write_text(
        STUBBORN
        + textwrap.dedent(
            """
            if __name__ == "__main__":
                ending, pid_file = sys.argv[1:]
                tm = TaskManager()
                tm.start_sync()
                task_id = tm.register_task("stubborn", stubborn, pid_file,
                                           executor_type="process")
                wait_for(pid_file)
                if ending == "stop(timeout=1)":
                    tm.stop_sync(timeout=1)
                elif ending == "ctrl-c":
                    print("running", flush=True)
                    try:
                        tm.future(task_id).result(timeout=60)
                    except KeyboardInterrupt:
                        print("interrupted", flush=True)
            """
        )
    )
    started = time.monotonic()
    program = subprocess.Popen(
        [sys.executable, str(script), ending, str(pid_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        worker = int(wait_for_text(pid_file))
        if ending == "ctrl-c":
            assert program.stdout is not None
            assert program.stdout.readline().strip() == "running"
            program.send_signal(signal.SIGINT)
        _, err = program.communicate(timeout=WAIT * 2)
    finally:
        if program.poll() is None:
            program.kill()
            program.communicate()
    assert program.returncode == 0, err
    assert time.monotonic() - started < WAIT * 2
    assert "Traceback" not in err, err  # no EOFError from a worker started at exit
    assert gone_within(worker, WAIT / 2)


def crash(kind: str) -> str:
    if current_task().attempt == 1:
        if kind == "SIGSEGV":
            ctypes.string_at(0)
        elif kind == "SIGABRT":
            os.abort()
        elif kind == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            os._exit(3)
    return "second attempt"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="zombies are counted in /proc")
def test_workers_that_crash_fail_their_attempt_precisely_and_leave_no_zombie() -> None:
    with running(ProcessExecutor(2, name="procs")) as tm:
        for kind, reason in [
            ("SIGSEGV", "killed by SIGSEGV"),
            ("SIGABRT", "killed by SIGABRT"),
            ("SIGKILL", "killed by SIGKILL"),
            ("exit", "exit code 3"),
        ]:
            once = tm.register_task(kind, crash, kind, executor_type="procs")
            with pytest.raises(TaskExecutionError, match=f"died: {reason} "):
                tm.future(once).result(WAIT * 3)
            again = tm.register_task(
                kind, crash, kind, executor_type="procs", max_retries=1, retry_delay=0.0
            )
            assert tm.future(again).result(WAIT * 3) == "second attempt"
        ours = str(os.getpid())
        zombies = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
                state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
                if state == "Z" and parent == ours:
                    zombies.append(pid)
        assert zombies == []
