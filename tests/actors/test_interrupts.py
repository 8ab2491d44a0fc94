"""A timeout or cancel interrupts a thread task's own code, never the library's.

The stress cases run in a subprocess with a deadline: a deadlock there is a failed test,
not a hung run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from actors import (
    ActorSystem,
    TaskCancellationError,
    TaskManager,
    TaskStatus,
    TaskTimeoutError,
    ThreadPoolExecutor,
    current_task,
)

from .conftest import WAIT

DEADLINE = 45.0  # for a whole stress scenario in its subprocess (pytest stops at 60)


def run_scenario(body: str) -> str:
    """Run ``body`` in a fresh interpreter with structlog writing every event (the
    setting under which the interrupts used to wedge the system); its stdout."""
    script = textwrap.dedent(
        """
        import os, structlog
        structlog.configure(
            processors=[structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")),
        )
        """
    ) + textwrap.dedent(body)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the scenario did not finish within {DEADLINE}s (a deadlock)")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow  # a stress run in a subprocess
def test_timeouts_of_tasks_reporting_progress_in_a_loop_never_wedge_the_system() -> None:
    # Thousands of interrupts, each landing wherever the task's thread is: mostly inside
    # report_progress (the store's lock, the event bus, structlog's processors).
    out = run_scenario(
        """
        from actors import TaskManager, TaskTimeoutError, current_task

        def busy():
            context = current_task()
            while True:
                context.report_progress(0.5, "working")

        with TaskManager(max_concurrent_tasks=4, keep_finished=None) as tm:
            ids = [tm.register_task("busy", busy, timeout=0.002) for _ in range(600)]
            errors = {type(tm.future(i).exception(timeout=60)).__name__ for i in ids}
            after = tm.register_task("after", lambda: "still working")
            print(sorted(errors), tm.future(after).result(timeout=60))
        """
    )
    assert out.split() == ["['TaskTimeoutError']", "still", "working"]


@pytest.mark.slow  # a stress run in a subprocess
def test_tasks_registered_from_tasks_that_time_out_all_run() -> None:
    # An interrupt between the store's insert and the scheduler's notice used to leave
    # the child PENDING for good.
    out = run_scenario(
        """
        from actors import TaskManager

        def parent(n):
            for _ in range(30):
                tm.register_task("child", abs, n)

        with TaskManager(max_concurrent_tasks=4, keep_finished=None) as tm:
            parents = [tm.register_task("parent", parent, i, timeout=0.0005) for i in range(300)]
            for p in parents:
                tm.future(p).exception(timeout=60)
            children = [t.task_id for t in tm.get_all_tasks() if t.name == "child"]
            ended = [tm.future(c).result(timeout=60) for c in children]
            print(len(children) > 0, len(ended) == len(children))
        """
    )
    assert out.split() == ["True", "True"]


def test_a_timeout_wakes_a_task_waiting_for_another_task() -> None:
    # The wait (future().result(), a library call) is shielded; the timeout is not
    # deferred until the child ends, it wakes the wait and ends the parent's work.
    release = threading.Event()
    parent_returned = threading.Event()

    def child() -> str:
        release.wait(WAIT)
        return "child"

    with TaskManager(max_concurrent_tasks=4) as tm:
        child_id = tm.register_task("child", child)

        def parent() -> None:
            try:
                tm.future(child_id).result()
            finally:
                parent_returned.set()

        parent_id = tm.register_task("parent", parent, timeout=0.2)
        assert isinstance(tm.future(parent_id).exception(timeout=WAIT), TaskTimeoutError)
        assert parent_returned.wait(WAIT)
        assert tm.get_task_status(child_id) is TaskStatus.RUNNING
        release.set()
        assert tm.future(child_id).result(timeout=WAIT) == "child"


def test_a_cooperative_executor_never_raises_in_the_tasks_thread() -> None:
    saw_cancelled = threading.Event()
    raised: list[BaseException] = []

    def polite() -> None:
        context = current_task()
        try:
            while not context.cancelled:
                context.report_progress(0.1)
        except BaseException as error:
            raised.append(error)
            raise
        saw_cancelled.set()

    with TaskManager() as tm:
        task_id = tm.register_task(
            "polite", polite, timeout=0.05, executor_type=ThreadPoolExecutor(1, interrupt=False)
        )
        assert isinstance(tm.future(task_id).exception(timeout=WAIT), TaskTimeoutError)
        assert saw_cancelled.wait(WAIT)
    assert raised == []


def test_cooperative_executors_from_a_config_and_a_clear_error_for_a_non_bool() -> None:
    config = {
        "executors": [
            {"name": "gentle", "type": "thread_pool", "max_workers": 2, "interrupt": False},
            {"name": "one", "type": "sequential", "interrupt": False},
        ]
    }
    with ActorSystem.from_config(config) as system:
        assert not system.executors["gentle"].interrupts_threads
        assert not system.executors["one"].interrupts_threads
        assert system.executors["thread_pool"].interrupts_threads
    with pytest.raises(TypeError, match="interrupt must be True or False, got 'no'"):
        ThreadPoolExecutor(2, interrupt="no")  # type: ignore[arg-type]


def test_a_shielded_block_finishes_before_the_interrupt_is_raised() -> None:
    inside = threading.Event()
    cancelled = threading.Event()
    steps: list[str] = []

    def careful() -> None:
        context = current_task()
        with context.shielded():
            steps.append("begin")
            inside.set()
            cancelled.wait(WAIT)
            # Still uninterrupted, though the cancel came: a busy loop, not a sleep.
            for _ in range(100_000):
                pass
            steps.append("end")
        steps.append("after")  # never: the interrupt is raised as the block ends

    with TaskManager() as tm:
        task_id = tm.register_task("careful", careful)
        assert inside.wait(WAIT)
        assert tm.cancel_task_sync(task_id)
        cancelled.set()
        assert isinstance(tm.future(task_id).exception(timeout=WAIT), TaskCancellationError)
        tm.stop_sync(WAIT)  # waits for the work to return
    assert steps == ["begin", "end"]


@pytest.mark.slow  # a stress run in a subprocess
def test_interrupt_as_the_work_returns_never_reaches_the_pool_thread() -> None:
    # An interrupt sent just as the function returns is withdrawn (or delivered inside
    # the attempt's own frames): the pool thread goes on running later attempts.
    out = run_scenario(
        """
        from actors import TaskManager, ThreadPoolExecutor

        def quick(n):
            total = 0
            for i in range(n % 400):
                total += i
            return total

        with TaskManager(max_concurrent_tasks=2) as tm:
            pool = ThreadPoolExecutor(2, name="two")
            ids = [
                tm.register_task("q", quick, n, timeout=0.00005, max_retries=2,
                                 executor_type=pool)
                for n in range(3000)
            ]
            for i in ids:
                tm.future(i).exception(timeout=60)
            last = tm.register_task("last", quick, 10, executor_type=pool)
            print(tm.future(last).result(timeout=60))
        """
    )
    assert out.split() == ["45"]
