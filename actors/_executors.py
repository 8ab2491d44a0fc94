"""Executors: the backends tasks run on, the actors that own them, and task actors.

An :class:`Executor` says where work runs (a thread pool, one thread, an asyncio loop) and
how much of it at once (``capacity``). In the ActorSystem's tree one executor actor owns
each executor's backend. Each attempt is handed to the executor's :class:`Launcher`,
which starts a task actor hosted on the executor's threads or loop (no thread per task
actor) and arms the attempt's deadline on the shared timer; at the deadline the attempt
ends with TaskTimeoutError. A task actor runs one attempt; its outcome comes back as a
typed result and the task's retry policy decides whether the next attempt starts (after
a delay, with the slot freed).
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import itertools
import os
import threading
import types
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import pykka

from actors._context import reset_current, set_current
from actors._faults import faults
from actors._protocol import Address, Notices, Settled, Wake
from actors._runtime import AsyncioDispatcher, Dispatcher, HostedActor, ThreadPoolDispatcher
from actors._store import Attempt, Interrupted, TaskStore
from actors._task import Task
from actors.errors import (
    TaskCancellationError,
    TaskError,
    TaskExecutionError,
    TaskTimeoutError,
)
from supervision import Backoff, TimerService
from supervision._validate import check_int

__all__ = [
    "AsyncExecutor",
    "Executor",
    "ExecutorActor",
    "Launcher",
    "SequentialExecutor",
    "ThreadPoolExecutor",
]

_numbers = itertools.count(1)


def is_coroutine_function(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` gives a coroutine: an ``async def`` function or method, a
    ``functools.partial`` of one (at any depth), or an object whose ``__call__`` is one."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if isinstance(func, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        return False  # their __call__ is never a coroutine function
    return inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async __call__ objects
    )


class Executor(abc.ABC):
    """Where tasks run and how many at once. Give one to ``register_task(executor_type=...)``.

    An executor belongs to one ActorSystem; it starts its threads (or loop) when the
    system first uses it and stops them when the system shuts down.
    """

    kind: ClassVar[str]

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"executor name must be a non-empty string, got {name!r}")
        self.name = name or f"{self.kind}-{next(_numbers)}"
        self._lock = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._loop_for_coroutines: Callable[[], AsyncioDispatcher] | None = None
        self._closed = False
        self._owner: weakref.ref[object] | None = None
        self._owner_name = ""

    def _claim(self, system: object, system_name: str, *, check_only: bool = False) -> None:
        """Make ``system`` this executor's one owner; ValueError if another has it.

        An executor's threads or loop are started and shut down with one system: a
        second system would find it closed when the first stops, and its tasks would
        wait forever.
        """
        with self._lock:
            owner = None if self._owner is None else self._owner()
            if owner is system:
                return
            if self._closed or self._owner is not None:
                raise ValueError(
                    f"executor {self.name!r} belongs to actor system {self._owner_name!r}"
                    f"{' (shut down)' if self._closed else ''}; an executor serves one "
                    "system: make a new one for this system"
                )
            if not check_only:
                self._owner, self._owner_name = weakref.ref(system), system_name

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many attempts may run on this executor at the same time."""

    @abc.abstractmethod
    def _new_dispatcher(self) -> Dispatcher: ...

    def _open(self, loop_for_coroutines: Callable[[], AsyncioDispatcher]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"executor {self.name} was shut down")
            self._loop_for_coroutines = loop_for_coroutines
            if self._dispatcher is None:
                self._dispatcher = self._new_dispatcher()

    def _dispatcher_for(self, coroutine: bool) -> Dispatcher:
        """Sync work runs on our threads; coroutine functions on an event loop."""
        assert self._dispatcher is not None
        assert self._loop_for_coroutines is not None
        if coroutine and not isinstance(self._dispatcher, AsyncioDispatcher):
            return self._loop_for_coroutines()
        return self._dispatcher

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, capacity={self.capacity})"


class ThreadPoolExecutor(Executor):
    """Runs sync functions on a pool of ``max_workers`` threads (default: min(32, cpus+4)).

    Coroutine functions given to it run on the system's event loop instead: they never
    block a pool thread.
    """

    kind = "thread_pool"

    def __init__(self, max_workers: int | None = None, *, name: str | None = None) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        check_int("max_workers", max_workers, minimum=1)
        super().__init__(name)
        self.max_workers = max_workers

    @property
    def capacity(self) -> int:
        return self.max_workers

    def _new_dispatcher(self) -> Dispatcher:
        return ThreadPoolDispatcher(self.max_workers, name=f"{self.name}-worker")


class SequentialExecutor(Executor):
    """Runs one task at a time, in the order the scheduler starts them, on one thread."""

    kind = "sequential"

    @property
    def capacity(self) -> int:
        return 1

    def _new_dispatcher(self) -> Dispatcher:
        return ThreadPoolDispatcher(1, name=f"{self.name}-worker")


class AsyncExecutor(Executor):
    """Runs coroutine functions on its own event loop thread, ``max_concurrency`` at once.

    A sync application can use it: the loop runs in a thread of its own. Sync functions
    given to it run on a thread pool of its own with ``max_concurrency`` threads (started
    as needed), never on the loop thread: every slot it reports is a slot it can run.
    """

    kind = "async"

    def __init__(self, max_concurrency: int = 100, *, name: str | None = None) -> None:
        check_int("max_concurrency", max_concurrency, minimum=1)
        super().__init__(name)
        self.max_concurrency = max_concurrency
        self._sync_pool: ThreadPoolDispatcher | None = None

    @property
    def capacity(self) -> int:
        return self.max_concurrency

    def _new_dispatcher(self) -> Dispatcher:
        return AsyncioDispatcher(name=f"{self.name}-loop")

    def _dispatcher_for(self, coroutine: bool) -> Dispatcher:
        if coroutine:
            return super()._dispatcher_for(coroutine)
        with self._lock:
            if self._sync_pool is None:
                if self._closed:
                    raise RuntimeError(f"executor {self.name} was shut down")
                self._sync_pool = ThreadPoolDispatcher(
                    self.max_concurrency, name=f"{self.name}-worker"
                )
            return self._sync_pool

    def _close(self) -> None:
        super()._close()
        with self._lock:
            pool, self._sync_pool = self._sync_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    @property
    def loop_dispatcher(self) -> AsyncioDispatcher:
        with self._lock:
            if self._dispatcher is None:
                if self._closed:
                    raise RuntimeError(f"executor {self.name} was shut down")
                self._dispatcher = self._new_dispatcher()
            assert isinstance(self._dispatcher, AsyncioDispatcher)
            return self._dispatcher


# -- outcomes and retry policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_delay: float = 60.0
    jitter: float = 0.0

    def policy(self, task: Task) -> Callable[[int], float]:
        """Delay before retry n: ``retry_delay * 2**(n-1)``, capped, plus jitter."""
        cap = max(self.max_delay, task.retry_delay)
        backoff = Backoff(min_delay=task.retry_delay, max_delay=cap, factor=2.0, jitter=self.jitter)
        return backoff.delay


def _failure(task: Task, attempt: int, error: BaseException) -> tuple[TaskError, bool]:
    """The TaskError an attempt ends with, and whether it may be retried."""
    if isinstance(error, TaskError):
        # Raised by the task itself (raise_if_cancelled, a nested execute_task): kept as
        # it is, never wrapped in TaskExecutionError.
        return error, not isinstance(error, TaskCancellationError)
    wrapped = TaskExecutionError(
        f"task {task.task_id} ({task.name}) failed: {type(error).__name__}: {error}",
        task.task_id,
        {"attempt": attempt, "error_type": type(error).__name__},
        original_error=error,
    )
    return wrapped, True


class _Outcome:
    __slots__ = ("error", "interrupted", "result")

    def __init__(
        self, result: Any = None, error: BaseException | None = None, interrupted: bool = False
    ) -> None:
        self.result, self.error, self.interrupted = result, error, interrupted


def _call_in_thread(
    attempt: Attempt, loop_for_coroutines: Callable[[], AsyncioDispatcher] | None
) -> _Outcome:
    """Run a sync attempt in the calling thread; an Interrupted comes back as such.

    A sync callable that returns an awaitable (``lambda: fetch(url)``, a partial of an
    object with an async ``__call__``) has its awaitable awaited on the system's event
    loop while this thread waits: the task's result is never an un-awaited coroutine.
    """
    task = attempt.task
    token = set_current(attempt.context)
    try:
        if not attempt.running_in_thread(threading.get_ident()):
            return _Outcome(interrupted=True)  # timed out or cancelled before it began
        try:
            result = task.func(*task.args, **task.kwargs)
            if inspect.isawaitable(result):
                result = _await_on_loop(attempt, result, loop_for_coroutines)
        finally:
            attempt.running_in_thread(None)
    except Interrupted:
        return _Outcome(interrupted=True)
    except BaseException as error:  # noqa: BLE001 - every failure is the task's outcome
        if attempt.interrupted:  # the wait for the loop was cancelled by a timeout/cancel
            return _Outcome(interrupted=True)
        return _Outcome(error=error)
    finally:
        reset_current(token)
    return _Outcome(result)


def _await_on_loop(
    attempt: Attempt,
    awaitable: Awaitable[Any],
    loop_for_coroutines: Callable[[], AsyncioDispatcher] | None,
) -> Any:
    """Await ``awaitable`` on the system's loop, in this thread's context; wait for it here.

    A timeout or cancel of the attempt cancels the awaiting asyncio task (the thread
    blocked in ``result()`` would not see an asynchronous exception until it returned).
    """
    try:
        if loop_for_coroutines is None:
            raise RuntimeError("no event loop")
        loop = loop_for_coroutines().loop
    except RuntimeError as error:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never run: and no "never awaited" warning either
        raise RuntimeError(
            f"task {attempt.task.name!r} returned an awaitable ({type(awaitable).__name__}) "
            f"that cannot be awaited: {error}"
        ) from None

    async def wait_for_it() -> Any:
        return await awaitable

    # run_coroutine_threadsafe schedules in a copy of this thread's context, so the
    # awaitable sees current_task() and the caller's context variables.
    future = asyncio.run_coroutine_threadsafe(wait_for_it(), loop)
    if not attempt.running_as_coroutine(future.cancel):
        future.cancel()
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        if attempt.interrupted:
            raise
        raise TaskExecutionError(  # cancelled from outside: the loop is shutting down
            f"task {attempt.task.name!r}: its awaitable was cancelled", attempt.task_id
        ) from None
    finally:
        attempt.running_as_coroutine(None)


@dataclass(slots=True)
class _Runtime:
    """What a task actor needs: shared by all the attempts of one system."""

    store: TaskStore
    scheduler: Address
    notices: Notices
    retry: RetrySettings
    loop_for_coroutines: Callable[[], AsyncioDispatcher] | None = None
    """The loop that awaits what a sync function returns, when it returns an awaitable."""
    dispatch_next: Callable[[bool], None] = lambda continuation: None
    """Start the next ready tasks in the slots just freed (the system's ReadyQueue)."""
    settle: Callable[[str], None] = lambda task_id: None
    """Tell the dependency graph a task left RUNNING (the system's DependencyGraph)."""


class TaskActor(HostedActor):
    """Runs one attempt of one task, hosted on its executor's threads or loop.

    on_start runs on a dispatcher thread (sync work runs right there) or on the loop
    thread (coroutines become asyncio tasks; sync work goes to the loop's thread pool).
    When the work returns, the actor records the outcome, frees the slot, tells the
    scheduler and stops.
    """

    throughput = 8
    # Not in pykka's ActorRegistry: a task actor lives for one attempt and is reached
    # through the task store (get_task, cancel_task). Registering every attempt made all
    # pool threads queue on the registry's one lock (a convoy: ~3 context switches per
    # task at 4 slots, measured with examples/benchmark.py scenario 1).
    registered = False

    def __init__(
        self, attempt: Attempt, runtime: _Runtime, on_loop: bool, continuation: bool = False
    ) -> None:
        super().__init__()
        self.attempt = attempt
        self.runtime = runtime
        self.on_loop = on_loop
        self._first_slice_here = continuation

    def on_start(self) -> None:
        attempt = self.attempt
        if not self.on_loop:
            try:
                outcome = _call_in_thread(attempt, self.runtime.loop_for_coroutines)
            except Interrupted:  # delivered just after the call returned
                outcome = _Outcome(interrupted=True)
            self._finish(outcome)
            # We are inside our own mailbox slice: stop at once rather than sending
            # ourselves a stop message (nothing else is ever sent to a task actor).
            self._stop()
            return
        # Only coroutine functions are hosted on a loop (executors send sync work to
        # threads, never to a loop thread).
        loop = asyncio.get_running_loop()
        work: asyncio.Future[_Outcome] = loop.create_task(
            self._run_coroutine(), context=contextvars.copy_context()
        )

        def cancel_work() -> None:
            loop.call_soon_threadsafe(work.cancel)

        if not attempt.running_as_coroutine(cancel_work):
            work.cancel()  # timed out or cancelled before it began
        work.add_done_callback(self._coroutine_done)

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """The task actor itself failed (not the task's function): its supervisor's part.

        The attempt must not be left RUNNING with its slot held: it fails with
        TaskExecutionError (retried under the task's policy), the slot is freed, and
        dependents and the ready queue hear of it, as after any attempt.
        """
        super()._handle_failure(exception_type, exception_value, traceback)
        attempt, runtime = self.attempt, self.runtime
        store = runtime.store
        if attempt.deadline is not None:
            attempt.deadline.cancel()
        error = TaskExecutionError(
            f"task {attempt.task_id}: its task actor failed: {exception_value!r}",
            attempt.task_id,
            {"attempt": attempt.number, "actor_failure": True},
            original_error=exception_value,
        )
        store.fail_attempt(attempt, error, runtime.retry.policy(attempt.task))
        store.release(attempt)
        if store.needs_settling(attempt.task_id):
            runtime.settle(attempt.task_id)
        runtime.dispatch_next(False)

    async def _run_coroutine(self) -> _Outcome:
        attempt = self.attempt
        task = attempt.task
        set_current(attempt.context)  # this asyncio task runs in its own context copy
        try:
            result = await task.func(*task.args, **task.kwargs)
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                return _Outcome(interrupted=True)  # a timeout, a cancel, or the loop closing
            # The coroutine raised CancelledError itself (nobody cancelled it): that is
            # its own failure, retried under its policy like any other.
            return _Outcome(error=error)
        except BaseException as error:  # noqa: BLE001 - every failure is the task's outcome
            return _Outcome(error=error)
        finally:
            attempt.running_as_coroutine(None)
        return _Outcome(result)

    def _coroutine_done(self, work: asyncio.Future[_Outcome]) -> None:
        if work.cancelled():
            outcome = _Outcome(interrupted=True)
        else:
            error = work.exception()
            outcome = _Outcome(error=error) if error is not None else work.result()

        def finish() -> None:
            self._finish(outcome)
            self._stop_now()  # a loop callback of ours: no slice of this actor is running

        # The next attempt this one starts on the loop begins right after, in this same
        # callback (as a pool thread runs it next), not in a callback of its own.
        dispatcher = self._dispatcher
        if isinstance(dispatcher, AsyncioDispatcher):
            dispatcher.run_with_next(finish)
        else:
            finish()

    def _finish(self, outcome: _Outcome) -> None:
        attempt, store = self.attempt, self.runtime.store
        if attempt.deadline is not None:
            attempt.deadline.cancel()
        faults.hit("task_actor.before_outcome")
        if outcome.interrupted:
            # Only a timeout or a cancel interrupts, and each ended the attempt already;
            # if not, the coroutine was cancelled from outside (the loop shutting down).
            interrupted = TaskCancellationError(
                f"task {attempt.task_id} was interrupted", attempt.task_id
            )
            settled = store.fail_attempt(attempt, interrupted, None) is not False
        elif outcome.error is None:
            settled = store.complete(attempt, outcome.result, release=True)
        else:
            error, retryable = _failure(attempt.task, attempt.number, outcome.error)
            policy = self.runtime.retry.policy(attempt.task) if retryable else None
            settled = store.fail_attempt(attempt, error, policy) is not False
        # The worst moment: the attempt has ended (a success has freed its slot too), and
        # neither its dependents nor the ready queue have heard of it.
        faults.hit("task_actor.after_outcome")
        store.release(attempt)  # unless complete() did
        # Wake dependents or arm a retry right here, on this thread (a finished task that
        # nobody depends on, most of them, needs neither); then fill the free slot without
        # waiting for anyone: on a pool thread the next attempt may run right here, once
        # this actor's slice is done.
        if settled and store.needs_settling(attempt.task_id):
            self.runtime.settle(attempt.task_id)
        self.runtime.dispatch_next(True)  # a continuation: see _coroutine_done


def expire(runtime: _Runtime, attempt: Attempt) -> None:
    """The attempt's deadline passed: end it with TaskTimeoutError and interrupt its work.

    Runs on the timer thread. If the attempt already ended, nothing happens.
    """
    task = attempt.task
    error = TaskTimeoutError(
        f"task {task.task_id} ({task.name}) timed out after {task.timeout}s "
        f"(attempt {attempt.number})",
        task.task_id,
        {"timeout": task.timeout, "attempt": attempt.number},
    )
    if runtime.store.fail_attempt(attempt, error, runtime.retry.policy(task)) is not False:
        attempt.interrupt()
        runtime.notices.post(Settled(task.task_id))


class Launcher:
    """Starts attempts on one executor: a task actor on its threads or loop, and a deadline.

    Called by the scheduler on its own thread; it only hands work over, never waits.
    """

    __slots__ = ("executor", "loop_for_coroutines", "runtime", "timer")

    def __init__(
        self,
        executor: Executor,
        runtime: _Runtime,
        loop_for_coroutines: Callable[[], AsyncioDispatcher],
        timer: TimerService,
    ) -> None:
        self.executor = executor
        self.runtime = runtime
        self.loop_for_coroutines = loop_for_coroutines
        self.timer = timer

    def __call__(self, attempt: Attempt, continuation: bool = False) -> None:
        executor = self.executor
        if executor._dispatcher is None:
            executor._open(self.loop_for_coroutines)  # RuntimeError once shut down
        dispatcher = executor._dispatcher_for(attempt.task.is_coroutine)
        timeout = attempt.task.timeout
        if timeout is not None:
            runtime = self.runtime
            attempt.deadline = self.timer.call_later(timeout, lambda: expire(runtime, attempt))
        TaskActor.start_on(
            dispatcher,
            attempt,
            self.runtime,
            isinstance(dispatcher, AsyncioDispatcher),
            continuation,
        )


class ExecutorActor(pykka.ThreadingActor):
    """The actor that owns one executor's backend in the supervision tree.

    It opens the executor's threads or loop when it starts and wakes the scheduler;
    attempts are handed to the backend by the executor's Launcher (no hop through this
    actor's thread), and the backend outlives a restart of this actor, so attempts
    already running go on. Runs on its own thread.
    """

    use_daemon_thread = True

    def __init__(
        self,
        executor: Executor,
        runtime: _Runtime,
        loop_for_coroutines: Callable[[], AsyncioDispatcher],
    ) -> None:
        super().__init__()
        self.executor = executor
        self.runtime = runtime
        self.loop_for_coroutines = loop_for_coroutines

    def on_start(self) -> None:
        self.executor._open(self.loop_for_coroutines)
        self.runtime.scheduler.tell(Wake())

    def on_receive(self, message: Any) -> Any:
        faults.hit("executor_actor.receive")
        return super().on_receive(message)
