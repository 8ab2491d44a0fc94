"""Bad input at every public entry point: a specific error or a documented no-op."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import (
    ActorSystem,
    AsyncExecutor,
    TaskManager,
    TaskNotFoundError,
    TaskStatus,
    ThreadPoolExecutor,
    messages,
)
from actors.compat.run_task import schedule_periodic
from actors.core.events import Subscription

from .conftest import WAIT


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: ThreadPoolExecutor(0),
            ValueError,
            r"max_workers must be an integer from 1 to 1024 \(.*\), got 0",
        ),
        (lambda: ThreadPoolExecutor(2.5), TypeError, "max_workers must be an integer, got 2.5"),
        (lambda: AsyncExecutor(-1), ValueError, "max_concurrency must be an integer >= 1"),
        (lambda: ThreadPoolExecutor(2, name=""), ValueError, "executor name must be"),
        (
            lambda: ActorSystem(executors=[object()], autostart=False),
            TypeError,
            "Executor instances",
        ),
        (
            lambda: ActorSystem(
                executors=[ThreadPoolExecutor(name="x"), AsyncExecutor(name="x")], autostart=False
            ),
            ValueError,
            "executor names must be unique",
        ),
        (lambda: ActorSystem(max_retry_delay=0, autostart=False), ValueError, "max_retry_delay"),
        (lambda: ActorSystem(actors="tree", autostart=False), TypeError, "SupervisorSpec"),
    ],
)
def test_bad_constructor_arguments(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_calls_on_unknown_ids() -> None:
    tm = TaskManager()
    try:
        for getter in (tm.get_task, tm.get_task_status, tm.get_task_result, tm.get_task_error):
            assert getter("nope") is None
        assert tm.get_task_progress("nope") is None
        with pytest.raises(TaskNotFoundError):
            tm.cancel_task_sync("nope")
        with pytest.raises(TaskNotFoundError):
            tm.future("nope")
        with pytest.raises(TaskNotFoundError):
            asyncio.run(tm.execute_task("nope"))
        assert tm.get_task(None) is None  # type: ignore[arg-type]
    finally:
        tm.stop_sync(timeout=WAIT)


def test_double_start_and_stop_and_calls_after_stop() -> None:
    async def main() -> None:
        tm = TaskManager()
        await tm.start()
        await tm.start()  # a no-op
        done = tm.register_task("a", abs, -1)
        assert await tm.execute_task(done) == 1
        await tm.stop()
        await tm.stop()  # a no-op
        with pytest.raises(RuntimeError, match="stopped"):
            tm.register_task("b", abs, -2)
        with pytest.raises(RuntimeError, match="stopped"):
            await tm.start()
        # Reading, waiting on and cancelling what exists still answer after stop.
        assert tm.get_task_status(done) is TaskStatus.COMPLETED
        assert await tm.execute_task(done) == 1
        assert await tm.cancel_task(done) is False
        assert tm.get_metrics()["is_running"] is False

    asyncio.run(main())


def test_the_scheduler_refuses_bad_subscriptions_and_survives_bad_subscribers() -> None:
    class NotARef:
        def tell(self, message: Any) -> None:
            raise RuntimeError("I am not an actor")

    with ActorSystem() as system:
        with pytest.raises(TypeError, match="Subscribe takes an ActorRef"):
            system.scheduler.ask(messages.Subscribe(NotARef()), timeout=WAIT)  # type: ignore[arg-type]
        # Even one slipped past the scheduler (straight into the store) breaks nothing.
        system.events.subscribe(Subscription(NotARef(), None))  # type: ignore[arg-type]
        tm = system.task_manager
        assert tm.future(tm.register_task("a", abs, -3)).result(timeout=WAIT) == 3


def test_schedule_periodic_refuses_bad_input() -> None:
    tm = TaskManager()
    try:
        with (
            pytest.warns(DeprecationWarning, match="schedule_periodic"),
            pytest.raises(ValueError, match="interval must be a finite number > 0"),
        ):
            schedule_periodic(tm, "x", 0, lambda: None)
        with (
            pytest.warns(DeprecationWarning, match="schedule_periodic"),
            pytest.raises(TypeError, match="job must be callable"),
        ):
            schedule_periodic(tm, "x", 1, "job")  # type: ignore[arg-type]
    finally:
        tm.stop_sync(timeout=WAIT)
