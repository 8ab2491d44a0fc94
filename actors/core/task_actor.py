"""Task actors: one attempt each, hosted on their executor's threads or loop; their supervisor.

A task actor runs the function, records the outcome in the store and tells the scheduler
``Finished``. A task actor that itself fails (not its function) is the business of its
executor's :class:`ExecutorActor`, which ends the attempt and frees its slot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import pykka

from actors.core import tracing as _tracing
from actors.core.attempt import Attempt, Interrupted
from actors.core.call import Call, WorkerTimedOut, WorkLetGo
from actors.core.context import reset_current, set_current
from actors.core.executor import Executor
from actors.core.faults import FaultPoints
from actors.core.protocol import (
    Address,
    Finished,
    Notices,
    Settled,
    TaskActorFailed,
    Waiting,
    Wake,
)
from actors.core.store import Ended, TaskStore
from actors.core.task import Task
from actors.errors import (
    TaskCancellationError,
    TaskError,
    TaskExecutionError,
    TaskTimeoutError,
)
from actors.runtime.hosted import (
    AsyncioDispatcher,
    HostedActor,
    Mailbox,
    StoppedEvent,
    ThreadPoolDispatcher,
    uuid4_urn,
)
from actors.runtime.inline import Host
from actors.runtime.pykka_shim import Envelope
from actors.runtime.sync import handoff, run_now
from supervision import Backoff, TimerService

__all__ = [
    "AttemptRuntime",
    "ExecutorActor",
    "Launcher",
    "RemoteTaskActor",
    "RetrySettings",
    "TaskActor",
]

_LOST = Ended.LOST  # a global, not an enum lookup: see actors.core.store._PENDING


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
        f"task {task.name!r} ({task.task_id}) failed: {type(error).__name__}: {error}",
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
    """Run a sync attempt in the calling thread, in a copy of the context the task was
    registered in (request ids, structlog's context variables, tracing spans)."""
    context = attempt.task.context
    if context is None:
        return _run_in_thread(attempt, loop_for_coroutines)
    return context.copy().run(_run_in_thread, attempt, loop_for_coroutines)


def _run_in_thread(
    attempt: Attempt, loop_for_coroutines: Callable[[], AsyncioDispatcher] | None
) -> _Outcome:
    """Run a sync attempt in the calling thread; an Interrupted comes back as such.

    A sync callable that returns an awaitable (``lambda: fetch(url)``, a partial of an
    object with an async ``__call__``) has its awaitable awaited on the system's event
    loop while this thread waits: the task's result is never an un-awaited coroutine.
    """
    token = set_current(attempt.context)
    try:
        observer = _tracing.observer  # None unless traced: one read per attempt
        if observer is None:
            result = _call(attempt, loop_for_coroutines)
        else:
            with _tracing.watching(observer, attempt):
                result = _call(attempt, loop_for_coroutines)
    except Interrupted:
        return _Outcome(interrupted=True)
    except BaseException as error:  # noqa: BLE001 - every failure is the task's outcome
        if attempt.interrupted:  # the wait for the loop was cancelled by a timeout/cancel
            return _Outcome(interrupted=True)
        return _Outcome(error=error)
    finally:
        reset_current(token)
    return _Outcome(result)


def _call(attempt: Attempt, loop_for_coroutines: Callable[[], AsyncioDispatcher] | None) -> Any:
    """Call the task's function; an awaitable it returns is awaited on the system's loop.

    Only the function's own frames can be interrupted (``work_begins`` to ``work_ends``):
    an interrupt never lands in the library code around it.
    """
    task = attempt.task
    args, kwargs = attempt.inputs()
    if not attempt.work_begins():
        raise Interrupted  # timed out or cancelled before it began
    try:
        result = task.func(*args, **kwargs)
    finally:
        try:
            attempt.work_ends()
        except Interrupted:  # sent as the function returned, delivered at this call
            attempt.work_ends()  # (test_interrupt_as_the_work_returns)
            raise
    if result is not None and type(result) not in _PLAIN and inspect.isawaitable(result):
        result = _await_on_loop(attempt, result, loop_for_coroutines)
    return result


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
            f"task {attempt.task.name!r} ({attempt.task_id}) returned an awaitable "
            f"({type(awaitable).__name__}) "
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
            f"task {attempt.task.name!r} ({attempt.task_id}): its awaitable was cancelled",
            attempt.task_id,
        ) from None
    finally:
        attempt.running_as_coroutine(None)


@dataclass(frozen=True, slots=True)
class AttemptRuntime:
    """What every attempt of one system needs: the store, the scheduler, the policies."""

    store: TaskStore
    scheduler: Notices
    """Where the scheduler's notices go (its queue; see actors.core.protocol.Notices)."""
    retry: RetrySettings
    timer: TimerService
    faults: FaultPoints
    loop_for_coroutines: Callable[[], AsyncioDispatcher]
    """The loop that runs coroutines given to thread executors, and awaits what a sync
    function returns when it returns an awaitable."""

    def finished(self, attempt: Attempt, ended: Ended, host: Host | None) -> None:
        """Tell the scheduler the attempt's work returned (on the thread it returned on).

        ``host``: how this thread hosts the scheduler's slice (``run_now`` on a pool
        thread, ``loop.call_soon`` on a loop of the library's own); see
        actors.runtime.sync.handoff. None (the application's loop, which the application may
        block): the scheduler's own thread runs it, one wake-up per burst of notices.
        """
        settle = ended is not _LOST and self.store.needs_settling(attempt.task_id)
        if host is None:
            self.scheduler.post(Finished(attempt, settle))
            return
        # This thread is about to be free: the scheduler, hosted on it for this message,
        # may start the next attempt right here.
        handoff.free, handoff.host = True, host
        try:
            self.scheduler.post(Finished(attempt, settle))
        finally:
            handoff.free, handoff.host = False, None

    def actor_failed(self, attempt: Attempt, error: BaseException | None) -> None:
        """A task actor failed: end its attempt (retried under the task's policy), free its
        slot, and tell the scheduler. The executor actor's part, done here when it is down."""
        if attempt.deadline is not None:
            attempt.deadline.cancel()
        failure = TaskExecutionError(
            f"task {attempt.task.name!r} ({attempt.task_id}): its task actor failed: {error!r}",
            attempt.task_id,
            {"attempt": attempt.number, "actor_failure": True},
            original_error=error,
        )
        self.store.fail_attempt(attempt, failure, self.retry.policy(attempt.task))
        self.store.release(attempt)
        # Settle even if the attempt had ended before the actor failed: the scheduler may
        # not have heard of that end (settling twice changes nothing). Guarded by (slow)
        # tests/reliability/test_crashes.py::
        # test_a_task_actor_crashing_after_the_outcome_loses_nothing
        self.scheduler.post(Finished(attempt, self.store.needs_settling(attempt.task_id)))


class TaskActor(HostedActor):
    """Runs one attempt of one task, hosted on its executor's threads or loop.

    on_start runs on a dispatcher thread (sync work runs right there) or on the loop
    thread (the coroutine becomes an asyncio task). When the work returns, the actor
    records the outcome, tells the scheduler and stops. Its supervisor is its executor's
    :class:`ExecutorActor` (a temporary child: never restarted; the task's retry policy
    decides whether a new attempt starts).
    """

    throughput = 8
    # Not in pykka's ActorRegistry: a task actor lives for one attempt and is reached
    # through the task store (get_task, cancel_task). Registering every attempt made all
    # pool threads queue on the registry's one lock (a convoy under the GIL).
    registered = False

    # On a loop only (class defaults, not set per thread attempt): the loop and the
    # asyncio task running the coroutine, and its outcome once done.
    _loop: asyncio.AbstractEventLoop | None = None
    _work: asyncio.Future[None] | None = None
    _outcome: _Outcome | None = None

    def __init__(
        self,
        attempt: Attempt,
        runtime: AttemptRuntime,
        on_loop: bool,
        supervisor: Address,
        first_slice_here: bool = False,
    ) -> None:
        # HostedActor.__init__, inlined (one per attempt), without the URN and the ref:
        # made when asked for (a log line, a failure), which a task actor rarely is.
        self.actor_inbox = self._mailbox = Mailbox()
        self.actor_stopped = self._stopped = StoppedEvent()
        self.attempt = attempt
        self.runtime = runtime
        self.on_loop = on_loop
        self.supervisor = supervisor
        self._first_slice_here = first_slice_here

    @property
    def actor_urn(self) -> str:  # type: ignore[override]  # pykka's attribute, made on first use
        urn: str | None = self.__dict__.get("_urn")
        if urn is None:
            urn = self.__dict__["_urn"] = uuid4_urn()
        return urn

    @property
    def _actor_ref(self) -> pykka.ActorRef[Any]:  # type: ignore[override]
        ref: pykka.ActorRef[Any] | None = self.__dict__.get("_ref")
        if ref is None:
            ref = self.__dict__["_ref"] = pykka.ActorRef(self)
        return ref

    def on_start(self) -> None:
        attempt = self.attempt
        attempt.context._on_wait = self._waiting
        if not self.on_loop:
            self._finish(_call_in_thread(attempt, self.runtime.loop_for_coroutines))
            # We are inside our own mailbox slice: stop at once rather than sending
            # ourselves a stop message (nothing else is ever sent to a task actor).
            self._stop()
            return
        loop = asyncio.get_running_loop()
        registered_in = attempt.task.context
        work: asyncio.Future[None] = loop.create_task(
            self._run_coroutine(),
            context=contextvars.copy_context() if registered_in is None else registered_in.copy(),
        )
        self._loop, self._work = loop, work
        if not attempt.running_as_coroutine(self._cancel_work):
            work.cancel()  # timed out or cancelled before it began
        work.add_done_callback(self._coroutine_done)

    def _cancel_work(self) -> None:
        """Cancel the coroutine (from any thread: a timeout, a cancel)."""
        loop, work = self._loop, self._work
        if loop is not None and work is not None:
            loop.call_soon_threadsafe(work.cancel)

    def _waiting(self, waiting: bool) -> None:
        """The task waits for other tasks (``waiting``) or stops waiting: its slot goes
        back to the scheduler meanwhile, and a pool thread blocked in the wait lets its
        pool start another thread (the tasks waited for may need one)."""
        dispatcher = self._dispatcher
        if isinstance(dispatcher, ThreadPoolDispatcher):
            dispatcher.blocking(1 if waiting else -1)
        self.runtime.scheduler.post(Waiting(self.attempt, waiting))

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """The task actor itself failed (not the task's function): tell its supervisor."""
        super()._handle_failure(exception_type, exception_value, traceback)
        attempt = self.attempt
        if not self.supervisor.tell(TaskActorFailed(attempt, exception_value)):
            self.runtime.actor_failed(attempt, exception_value)  # the supervisor is down

    async def _run_coroutine(self) -> None:
        attempt = self.attempt
        task = attempt.task
        set_current(attempt.context)  # this asyncio task runs in its own context copy
        try:
            args, kwargs = attempt.inputs()
            observer = _tracing.observer
            if observer is None:
                result = await task.func(*args, **kwargs)
            else:
                with _tracing.watching(observer, attempt):
                    result = await task.func(*args, **kwargs)
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                outcome = _Outcome(interrupted=True)  # a timeout, a cancel, the loop closing
            else:
                # The coroutine raised CancelledError itself (nobody cancelled it): that
                # is its own failure, retried under its policy like any other.
                outcome = _Outcome(error=error)
        except BaseException as error:  # noqa: BLE001 - every failure is the task's outcome
            outcome = _Outcome(error=error)
        else:
            outcome = _Outcome(result)
        finally:
            attempt.running_as_coroutine(None)
        # The attempt ends in the coroutine's own last step, not in a done callback: the
        # application may block its loop before a callback runs, and the attempt's end
        # (its slot, its dependents, its waiters) must not wait for that. Out of the
        # task's context, as on a thread: the end is the library's, not the task's.
        # Guarded by tests/actors/test_embedding.py::
        # test_a_coroutine_task_ends_before_the_application_can_block_its_loop
        self._outcome = outcome
        dispatcher = self._dispatcher
        assert isinstance(dispatcher, AsyncioDispatcher)  # on_loop: hosted on a loop
        # The next attempt this one starts on the loop begins right after, in this same
        # step (as a pool thread runs it next), not in a callback of its own.
        contextvars.Context().run(dispatcher.run_with_next, self._finish_on_loop)

    def _coroutine_done(self, work: asyncio.Future[None]) -> None:
        self._work = None  # the asyncio task is done: let it go
        if work.cancelled():  # cancelled before its first step: the coroutine never ran
            self._outcome = _Outcome(interrupted=True)
            dispatcher = self._dispatcher
            assert isinstance(dispatcher, AsyncioDispatcher)  # on_loop: hosted on a loop
            dispatcher.run_with_next(self._finish_on_loop)
            return
        error = work.exception()
        if error is not None:  # ending the attempt failed: the task actor's own failure
            self._handle_failure(type(error), error, error.__traceback__)
            if self._mailbox.close():
                self._actor_loop_teardown()

    def _finish_on_loop(self) -> None:
        outcome, self._outcome = self._outcome, None
        assert outcome is not None
        self._finish(outcome)
        self._stop_now()  # a loop callback of ours: no slice of this actor is running

    def _finish(self, outcome: _Outcome) -> None:
        attempt, runtime = self.attempt, self.runtime
        store = runtime.store
        # The attempt is over: its waits no longer give a slot back. This also breaks the
        # cycle actor -> attempt -> context -> actor, so that the actor and its attempt
        # are freed by reference counting at once, not left to the cyclic collector.
        attempt.context._on_wait = None
        if attempt.deadline is not None:
            attempt.deadline.cancel()
        if runtime.faults.armed:
            runtime.faults.hit("task_actor.before_outcome")
        if outcome.interrupted:
            # Only a timeout or a cancel interrupts, and each ended the attempt already;
            # if not, the coroutine was cancelled from outside (the loop shutting down).
            interrupted = TaskCancellationError(
                f"task {attempt.task.name!r} ({attempt.task_id}) was interrupted",
                attempt.task_id,
            )
            ended = store.fail_attempt(attempt, interrupted, None)
            store.release(attempt)
        elif outcome.error is None:
            ended = store.complete(attempt, outcome.result)  # frees the slot too
        else:
            error, retryable = _failure(attempt.task, attempt.number, outcome.error)
            ended = store.fail_attempt(
                attempt, error, runtime.retry.policy(attempt.task) if retryable else None
            )
            store.release(attempt)
        if attempt.observed is not None and ended is Ended.LOST:  # cheap test first
            # A timeout or cancel ended the attempt first; if it did so before the attempt
            # was being watched, nobody has told the observation yet.
            _tracing.ended(attempt.observed, attempt.task_id, attempt.task.error)
        # The worst moment: the attempt has ended and freed its slot in the store, and
        # the scheduler has not heard of it.
        if runtime.faults.armed:
            runtime.faults.hit("task_actor.after_outcome")
        # On a pool thread the scheduler's slice runs right here (not after this slice,
        # with execute_next: a burst rarely forms there); on a loop
        # of ours, once per loop iteration (the completions of one iteration, one slice);
        # never on the application's loop: it may block it before the slice runs.
        if not self.on_loop:
            runtime.finished(attempt, ended, run_now)
        else:
            owned = cast(AsyncioDispatcher, self._dispatcher).owns_loop
            runtime.finished(attempt, ended, _call_soon if owned else None)


class RemoteTaskActor(TaskActor):
    """A task actor for an executor whose attempts run elsewhere (``runs_elsewhere``).

    ``on_start`` hands the attempt to the executor as a :class:`Call`
    (``Executor._start_call``) and returns: no thread waits for the work. A timeout or
    cancel lets the work go (which kills the worker process, or cancels the Dask task).
    The work's end comes back to the actor as a message, handled on the thread that
    learned it (or on the executor's dispatcher, see ``ends_attempts_where_learned``).
    """

    def __init__(
        self, attempt: Attempt, runtime: AttemptRuntime, executor: Executor, supervisor: Address
    ) -> None:
        super().__init__(attempt, runtime, False, supervisor)
        self.executor = executor
        # The next slice runs on the thread that schedules it (see _schedule_slice): the
        # first one on the launching thread, the one for the outcome on the thread that
        # learned it. Anything else (a cancel's outcome) goes to the dispatcher.
        self._here = True
        self._claim: list[bool] = []
        self._let_go: Callable[[], object] = _nothing

    def _schedule_slice(self) -> None:
        if self._here:
            self._here = False
            self._run_slice()
            return
        super()._schedule_slice()

    def on_start(self) -> None:
        attempt = self.attempt
        task = attempt.task
        if attempt.interrupted:  # timed out or cancelled before it began
            self._finish(_Outcome(interrupted=True))
            self._stop()
            return
        observer = _tracing.observer
        trace = None
        if observer is not None:
            # The attempt's span starts here, in the registering context (its parent is
            # the span current at register_task); the store ends it with the attempt.
            # Its context travels with the call: the worker's spans are its children.
            registered_in = task.context
            if registered_in is None:
                _tracing.watching(observer, attempt)
            else:
                registered_in.copy().run(_tracing.watching, observer, attempt)
            trace = _tracing.carrier(observer, attempt)
        try:
            args, kwargs = attempt.inputs()  # the dependencies' results travel in the call
        except Exception as error:  # noqa: BLE001 - a result gone is the attempt's failure
            self._finish(_Outcome(error=error))
            self._stop()
            return
        call = Call(
            task.func,
            args,
            dict(kwargs),
            task.task_id,
            task.name,
            attempt.number,
            int(task.priority),
            task.is_coroutine,
            task.timeout,
            trace,
        )
        # One end reaches the actor: the work's (``_ended``) or an interruption's
        # (``_interrupt``), whichever takes the claim first (list.pop is atomic).
        self._claim = [True]
        try:
            cancel = self.executor._start_call(
                call, self.runtime.store.report_progress, self._ended
            )
        except Exception as error:  # noqa: BLE001 - a refused call is the attempt's failure
            self._finish(_Outcome(error=error))
            self._stop()
            return
        self._let_go = cancel
        if not attempt.running_as_coroutine(self._interrupt):
            self._interrupt()

    def _interrupt(self) -> None:
        """A timeout or cancel (under the attempt's lock): let the work go, and end the
        attempt in a slice on the dispatcher (this thread may hold the attempt's lock)."""
        try:
            self._claim.pop()
        except IndexError:
            return  # the work's end came first
        self._let_go()
        self._mailbox.put(Envelope(_Outcome(interrupted=True)))

    def _ended(self, result: Any, error: BaseException | None) -> None:
        """The executor learned the work's end (on the backend's thread): tell ourselves.

        The slice that handles it runs right here: that thread learned the outcome and
        holds nothing of ours, and a hop to a dispatcher thread per attempt is costly."""
        try:
            self._claim.pop()
        except IndexError:
            return  # interrupted first: that end is on its way
        if isinstance(error, WorkLetGo):  # the executor let it go (it closes)
            outcome = _Outcome(interrupted=True)
        else:
            outcome = _Outcome(result, error)
            self._here = self.executor.ends_attempts_where_learned
        self._mailbox.put(Envelope(outcome))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Outcome):
            self._here = False
            attempt = self.attempt
            attempt.running_as_coroutine(None)
            if isinstance(message.error, WorkerTimedOut):
                # The executor timed it out, counting from its worker's start.
                expire(self.runtime, attempt)
                message = _Outcome(interrupted=True)
            self._finish(message)
            self._stop()
            return None
        return super().on_receive(message)


# Results that are never awaitable: checked before inspect.isawaitable (an ABC check).
_PLAIN = frozenset({bool, int, float, str, bytes, tuple, list, dict, set})


def _nothing() -> None:
    pass


def _call_soon(run: Callable[[], None]) -> None:
    """Host a slice on the running loop, after the callbacks already due."""
    asyncio.get_running_loop().call_soon(run)


def expire(runtime: AttemptRuntime, attempt: Attempt) -> None:
    """The attempt's deadline passed: end it with TaskTimeoutError and interrupt its work.

    Runs on the timer thread. If the attempt already ended, nothing happens. The slot
    stays taken until the work really returns (its task actor then tells ``Finished``).
    """
    task = attempt.task
    error = TaskTimeoutError(
        f"task {task.name!r} ({task.task_id}) timed out after {task.timeout}s "
        f"(attempt {attempt.number})",
        task.task_id,
        {"timeout": task.timeout, "attempt": attempt.number},
    )
    if runtime.store.fail_attempt(attempt, error, runtime.retry.policy(task)) is not Ended.LOST:
        attempt.interrupt()
        runtime.scheduler.post(Settled(task.task_id))


class Launcher:
    """Starts attempts on one executor: a task actor on its threads or loop, and a deadline.

    Called by the scheduler actor; it only hands work over, never waits. It is what the
    scheduler knows of an executor (name, capacity, launch).
    """

    __slots__ = ("elsewhere", "executor", "name", "runtime", "supervisor")

    def __init__(self, executor: Executor, runtime: AttemptRuntime, supervisor: Address) -> None:
        self.executor = executor
        self.name = executor.name
        self.runtime = runtime
        self.supervisor = supervisor
        self.elsewhere = executor.runs_elsewhere

    @property
    def capacity(self) -> int:
        # What the scheduler may hand over: for an executor that prefetches, more than
        # it runs at once (its attempts wait in its backend's queue).
        if self.elsewhere:
            return self.executor.max_in_flight
        return self.executor.capacity

    def launch(self, attempt: Attempt) -> None:
        runtime = self.runtime
        if self.elsewhere:
            self._launch_elsewhere(attempt)
            return
        attempt.interrupts_threads = self.executor.interrupts_threads
        dispatcher = self.executor._dispatcher_for(attempt.task.is_coroutine)  # RuntimeError
        if dispatcher is None:
            dispatcher = runtime.loop_for_coroutines()
        timeout = attempt.task.timeout
        if timeout is not None:
            attempt.deadline = runtime.timer.call_later(timeout, lambda: expire(runtime, attempt))
        try:
            TaskActor._start_on(
                dispatcher,
                attempt,
                runtime,
                dispatcher.runs_a_loop,
                self.supervisor,
                handoff.take(),
            )
        except BaseException:
            _disarm(attempt)
            raise

    def _launch_elsewhere(self, attempt: Attempt) -> None:
        """Start an attempt on an executor whose work runs in other processes: its task
        actor, hosted on the executor's dispatcher, hands the call over."""
        runtime = self.runtime
        dispatcher = self.executor._dispatcher_for(False)  # RuntimeError if not open
        assert dispatcher is not None
        timeout = attempt.task.timeout
        if timeout is not None and not self.executor.enforces_timeouts:
            attempt.deadline = runtime.timer.call_later(timeout, lambda: expire(runtime, attempt))
        # Its first slice (handing the call over, which never waits) runs right here, on
        # the thread that runs the scheduler's slice: no hop to a dispatcher thread.
        try:
            RemoteTaskActor._start_on(dispatcher, attempt, runtime, self.executor, self.supervisor)
        except BaseException:
            _disarm(attempt)
            raise


def _disarm(attempt: Attempt) -> None:
    """The attempt never started (the scheduler puts it back): its deadline must not fire
    for it, nor keep it (and its task's arguments) on the timer until then."""
    deadline, attempt.deadline = attempt.deadline, None
    if deadline is not None:
        deadline.cancel()


class ExecutorActor(pykka.ThreadingActor):
    """The actor that owns one executor: it opens the backend in ``on_start``, closes it in
    ``on_stop``, and supervises the executor's task actors.

    Attempts do not pass through it (the scheduler launches them on the backend
    directly); a task actor that fails is reported to it (``TaskActorFailed``) and it
    ends the attempt. A restart of this actor keeps the backend: running attempts go on.
    Runs on its own thread.
    """

    use_daemon_thread = True

    def __init__(self, executor: Executor, runtime: AttemptRuntime, address: Address) -> None:
        super().__init__()
        self.executor = executor
        self.runtime = runtime
        self.address = address

    def on_start(self) -> None:
        wake = functools.partial(self.runtime.scheduler.address.tell, Wake())
        self.executor._wake = wake  # before open: a capacity change in open is not lost
        self.executor.open()
        self.address.ref = self.actor_ref
        wake()

    def on_receive(self, message: Any) -> Any:
        self.runtime.faults.hit("executor_actor.receive")
        if isinstance(message, TaskActorFailed):
            self.runtime.actor_failed(message.attempt, message.error)
            return None
        return super().on_receive(message)

    def on_stop(self) -> None:
        # Threads still running abandoned work are left to end on their own (daemons).
        self.executor.close(wait=False)
