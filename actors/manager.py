"""TaskManager: the one API for registering, running, waiting on and cancelling tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Concatenate, ParamSpec, TypeVar, cast, overload

from actors.core import messages
from actors.core.context import inside_a_task, shielded, waiting_for_tasks
from actors.core.executor import Executor
from actors.core.inputs import find
from actors.core.lifecycle import State
from actors.core.registration import build_task
from actors.core.retention import TaskId
from actors.core.store import NoRoom
from actors.core.task import Task, TaskPriority, TaskStatus
from actors.core.waiting import waker_for
from actors.errors import TaskError
from actors.handle import Submitter, TaskHandle, id_of, to_marker
from actors.observe.graph import FORMATS, render
from actors.system import (
    ActorSystem,
    ScheduleInfo,
    commit_later,
    provide_task_manager,
    start_once,
)
from supervision._validate import check_int, check_seconds, check_text, show

__all__ = ["TaskManager"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
K = TypeVar("K", bound=str | TaskHandle[Any])  # what a wait was given: ids or handles


class _Default(enum.Enum):
    SYSTEM = "the system's setting"


def _same_setting(name: str, given: object, system: ActorSystem) -> None:
    if given != getattr(system, name):
        raise ValueError(
            f"{name}={given} differs from the system's {getattr(system, name)}; a manager "
            "cannot change its system's settings (leave it out, or make the system with "
            "the setting you want)"
        )


_RETURN_WHEN = ("ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION")


def _put_id(ended: asyncio.Queue[Any], task: object, _waiter: asyncio.Future[Any]) -> None:
    ended.put_nowait(task)


def _ids(name: str, tasks: Iterable[K]) -> dict[str, K]:
    """Each task's id -> the id or handle it was given as (the first, if given twice)."""
    if isinstance(tasks, str | bytes) or not isinstance(tasks, Iterable):
        raise TypeError(f"{name} must be a list of task ids or handles, got {show(tasks)}")
    given: dict[str, K] = {}
    for task in tasks:
        if isinstance(task, TaskHandle):
            given.setdefault(task.id, task)
        elif isinstance(task, str):
            given.setdefault(task, task)
        else:
            raise TypeError(f"{name} must be a list of task ids or handles, got {show(task)} in it")
    return given


def _placeholder() -> None:
    """The function of a template request (``options``): only its fields are read."""


def _name_of(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) and name else type(func).__name__


def _awaiting_its_commit(
    register: Callable[Concatenate[TaskManager, P], str],
) -> Callable[Concatenate[TaskManager, P], Coroutine[Any, Any, str]]:
    async def register_task_async(self: TaskManager, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """``register_task`` for coroutines: the same arguments, and it returns once the
        task is committed to the journal, awaiting that without blocking the loop. The
        registrations of many coroutines (``asyncio.gather``) share one commit. The task
        runs only once it is committed. Beyond ``max_pending`` it awaits room (up to
        ``pending_timeout``, then TimeoutError) without blocking the loop.
        """
        system = self._system
        deadline = time.monotonic() + system.pending_timeout
        while True:
            if system.journal is None:
                committed, settle = None, None
            else:
                committed, settle = waker_for(asyncio.get_running_loop()).future()
            commit_later.done, commit_later.no_wait = settle, True
            try:
                task_id: str = register(self, *args, **kwargs)
                break
            except NoRoom as full:  # max_pending reached: wait for room without blocking
                left = deadline - time.monotonic()
                if left <= 0 or not await asyncio.to_thread(full.room.wait, left):
                    name = args[0] if args else kwargs.get("name", "?")
                    raise TimeoutError(system.no_room_message(str(name))) from None
            finally:
                commit_later.done, commit_later.no_wait = None, False
        if committed is not None:
            task_id = await committed
        return task_id

    return register_task_async


class TaskManager:
    """Runs tasks with priorities, dependencies, retries, timeouts, cancellation, progress.

    ::

        async with TaskManager(max_concurrent_tasks=4) as tm:
            fetch = tm.register_task("fetch", fetch_page, "https://example.org")
            parse = tm.register_task("parse", parse_page, dependencies=[fetch])
            result = await tm.execute_task(parse)

    Registration is safe from any thread, before or after ``start``. Once started, every
    registered task whose dependencies COMPLETED runs, highest priority first (equal
    priorities in registration order), within ``max_concurrent_tasks`` and each
    executor's capacity.

    Args:
        max_concurrent_tasks: attempts running at once, over all executors (default 4;
            with ``system``, the system's).
        default_executor_type: "auto" (coroutine functions on the asyncio executor, the
            rest on the thread pool), "async", "thread_pool", "sequential", an executor
            name, or an Executor.
        system: the ActorSystem to run on; by default the manager makes its own, starts
            it at ``start()`` and shuts it down at ``stop()``. A manager reads its
            system's settings and never changes them.
        keep_finished: how many finished tasks that the program no longer holds stay
            readable (the newest; default 10,000; None keeps all); older ones are
            forgotten: getters return None, ``execute_task`` and ``future`` raise
            TaskNotFoundError, futures already handed out still resolve. A finished task
            is kept while the program holds the id registration returned (or a handle to
            it). With a journal, forgotten tasks leave the journal too.
        journal: an SQLite file that keeps every task, so that a crash loses none (see
            ActorSystem; with ``system``, the system's). A journaled task's function
            must be importable by its qualified name and its arguments must pickle.
        journal_sync: "normal" (the default) or "full" (see ActorSystem).
        resources: units of each resource there is (``{"gpu": 2, "memory_mb": 8000}``):
            a task asking for some starts only when they are free.
        max_pending: registration beyond this many unfinished tasks waits for room
            (``register_task`` up to ``pending_timeout`` seconds, then TimeoutError;
            ``register_task_async`` awaits it). None: no bound.
        pending_timeout: how long a registration waits for room (default 60 s).
    """

    def __init__(
        self,
        max_concurrent_tasks: int | None = None,
        default_executor_type: str | Executor = "auto",
        system: ActorSystem | None = None,
        keep_finished: int | _Default | None = _Default.SYSTEM,
        journal: str | os.PathLike[str] | None = None,
        journal_sync: str = "normal",
        resources: Mapping[str, int] | None = None,
        max_pending: int | None = None,
        pending_timeout: float | None = None,
    ) -> None:
        if max_concurrent_tasks is not None:
            check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        if system is not None and not isinstance(system, ActorSystem):
            raise TypeError(f"system must be an ActorSystem, got {system!r}")
        if system is not None:
            # A manager reads its system's settings, never writes them: another manager
            # (or the application) shares the system and relies on them.
            if max_concurrent_tasks is not None:
                _same_setting("max_concurrent_tasks", max_concurrent_tasks, system)
            if keep_finished is not _Default.SYSTEM:
                _same_setting("keep_finished", keep_finished, system)
            if journal is not None:
                _same_setting("journal", os.fspath(journal), system)
            if resources is not None:
                _same_setting("resources", dict(resources), system)
            if max_pending is not None:
                _same_setting("max_pending", max_pending, system)
            if pending_timeout is not None:
                _same_setting("pending_timeout", pending_timeout, system)
        if not isinstance(default_executor_type, Executor | str):
            raise TypeError(
                "default_executor_type must be a string or an Executor, "
                f"got {default_executor_type!r}"
            )
        self._owns_system = system is None
        made = system or ActorSystem(
            max_concurrent_tasks=max_concurrent_tasks or 4,
            autostart=False,
            keep_finished=10_000 if keep_finished is _Default.SYSTEM else keep_finished,
            journal=journal,
            journal_sync=journal_sync,
            resources=resources,
            max_pending=max_pending,
            pending_timeout=60.0 if pending_timeout is None else pending_timeout,
        )
        # Checked now, so that a typo fails here and not at the first registration.
        if isinstance(default_executor_type, str) and default_executor_type != "auto":
            made.resolve_executor(default_executor_type, False)
        self._system = made
        self.max_concurrent_tasks = made.max_concurrent_tasks
        self.default_executor_type = default_executor_type
        self._store = made.store
        self._lock = threading.Lock()  # for its state only, never held while waiting
        self._state = State.NEW
        self._starting: threading.Event | None = None

    @property
    def system(self) -> ActorSystem:
        return self._system

    # -- registration -------------------------------------------------------------------------

    @shielded
    def register_task(
        self,
        name: str | None = None,
        func: Callable[..., Any] | None = None,
        *func_args: Any,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        dependencies: Iterable[str | TaskHandle[Any]] | None = None,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        description: str = "",
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        executor_type: str | Executor | None = None,
        key: str | None = None,
        delay: float | timedelta | None = None,
        not_before: datetime | None = None,
        limit_key: str | None = None,
        resources: Mapping[str, int] | None = None,
    ) -> TaskId:
        """Register a task and return its id. Safe from any thread.

        ``delay`` (seconds or a timedelta) or ``not_before`` (a datetime; naive is local
        time): the task is WAITING until then, holding no slot, then scheduled as usual.
        With a journal the moment is kept: after a restart it runs then, not at once.

        ``register_task("name", func, arg1, arg2, kwargs={...})`` or
        ``register_task(name="name", func=func, args=(arg1, arg2))``: the function's
        positional arguments come after it, or as ``args=`` (the older spelling).

        ``key``: an idempotency key. If a task registered with the same key is still
        known, its id is returned and nothing is registered. Without a journal a key is
        known as long as its task is kept; with one, from any earlier run too, and after
        ``keep_finished`` pruned its task, until ``forget`` drops that task. With a
        journal, the call returns once the task is committed to it: a crash after that
        does not lose it.

        ``limit_key``: the key whose limits (``limit``) its attempts obey (a host, a
        tenant). ``resources``: units of the manager's ``resources`` each attempt holds
        while it runs (``{"gpu": 1}``); asking for more than exists is a ValueError.

        Raises (and registers nothing): TypeError/ValueError for bad arguments (a
        non-callable func, a negative timeout, max_retries or retry_delay, an unknown
        executor type; with a journal, a function not importable by its qualified name
        or arguments that do not pickle), TaskDependencyError for an unknown dependency
        or a cycle, ValueError for a task_id already taken.
        """
        if name is None:
            raise TypeError("register_task() needs a name")
        if func is None:
            raise TypeError("register_task() needs a func")
        if func_args and args is not None:
            raise TypeError(
                "give the function's positional arguments after func or as args=, not both"
            )
        request = messages.SubmitTask(
            name,
            func,
            args=func_args if args is None else args,
            kwargs=kwargs,
            priority=priority,
            # handles among them become ids in _register
            dependencies=() if dependencies is None else cast(Iterable[str], dependencies),
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            task_id=task_id,
            description=description,
            tags=() if tags is None else tags,
            metadata=metadata,
            executor=self.default_executor_type if executor_type is None else executor_type,
            key=key,
            delay=delay,
            not_before=not_before,
            limit_key=limit_key,
            resources=resources,
        )
        return self._register(request)

    def _register(self, request: messages.SubmitTask) -> TaskId:
        """Register the task ``request`` describes, as this manager's; its id. The way down
        from ``register_task``, ``submit`` and the compat layers (callers are ``@shielded``).

        Handles become ids: in ``dependencies``, and as arguments (a ResultOf of their
        task, which becomes a dependency: the attempt gets the result in its place).
        """
        if not self._state.accepts_tasks:
            raise RuntimeError(f"the task manager is {self._state.value}")
        dependencies = request.dependencies
        if (
            dependencies
            and isinstance(dependencies, list | tuple | set | frozenset)
            and any(type(d) is TaskHandle for d in dependencies)
        ):
            dependencies = tuple(id_of(d) for d in dependencies)
        taking = find(request.args, request.kwargs, TaskHandle, to_marker)
        if taking is not None:
            args, kwargs, inputs = taking
            request = dataclasses.replace(
                request, args=args, kwargs=kwargs, dependencies=(*dependencies, *inputs)
            )
        elif dependencies is not request.dependencies:
            request = dataclasses.replace(request, dependencies=dependencies)
        # No lock here: a stop closes this manager in the store (``close(owner=...)``),
        # which refuses or lists this task atomically (test_registration_racing_stop_...);
        # registrations from many threads then share the journal's commits.
        task_id: TaskId = self._system.register(request, owner=self)  # type: ignore[assignment]
        return task_id

    register_task_async = _awaiting_its_commit(register_task)

    # -- schedules ------------------------------------------------------------------------------

    @shielded
    def schedule(
        self,
        name: str,
        func: Callable[..., Any],
        *args: Any,
        every: float | timedelta | None = None,
        cron: str | None = None,
        timezone: str | tzinfo | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        misfire: str = "skip",
        max_instances: int = 1,
        kwargs: Mapping[str, Any] | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        description: str = "",
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        executor_type: str | Executor | None = None,
        limit_key: str | None = None,
        resources: Mapping[str, int] | None = None,
    ) -> str:
        """Register ``func(*args, **kwargs)`` as a task named ``name`` every ``every``
        seconds (or timedelta), or at each time the ``cron`` expression names; returns
        the schedule's id.

        ``cron``: five fields ("*/5 * * * *"), read by cronsim, in ``timezone`` (an IANA
        name or a ZoneInfo; UTC by default). ``every`` counts from ``start`` (first run
        at ``start``) or from now (first run one interval from now). No run after
        ``end``. Each run is an ordinary task (the other keywords are
        ``register_task``'s) whose metadata names the schedule (``schedule``,
        ``schedule_name``) and its fire time (``fire_time``, ISO 8601 UTC).
        ``max_instances``: a run is skipped while that many of the schedule's tasks are
        unfinished. ``misfire``: what runs missed while the process was down (or more
        than a second late) do: "skip" (the default), "run_once" (one run for all of
        them) or "run_all". With a journal the schedule is kept: after a restart it
        resumes, its missed runs following ``misfire``. Schedules belong to the system
        and fire while it runs.

        Raises (and adds nothing): TypeError/ValueError naming a bad value (a cron
        expression cronsim refuses, an unknown time zone, both or neither of ``every``
        and ``cron``); with a journal, TypeError for a function that is not importable
        or arguments that do not pickle.
        """
        if not self._state.accepts_tasks:
            raise RuntimeError(f"the task manager is {self._state.value}")
        return self._system.schedule(
            name,
            func,
            *args,
            every=every,
            cron=cron,
            timezone=timezone,
            start=start,
            end=end,
            misfire=misfire,
            max_instances=max_instances,
            kwargs=kwargs,
            priority=priority,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            description=description,
            tags=() if tags is None else tags,
            metadata=metadata,
            executor=self.default_executor_type if executor_type is None else executor_type,
            limit_key=limit_key,
            resources=resources,
        )

    def unschedule(self, schedule_id: str) -> bool:
        """Remove a schedule (its tasks registered already go on); False if unknown."""
        return self._system.schedules.remove(schedule_id)

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule: its id, next and last run, counts (fired, skipped, running)."""
        return self._system.schedules.infos()

    def pause_schedule(self, schedule_id: str) -> bool:
        """Register no runs of the schedule until ``resume_schedule``; False if unknown."""
        return self._system.schedules.pause(schedule_id)

    def resume_schedule(self, schedule_id: str) -> bool:
        """Run the schedule again from its next time after now (the runs due while it
        was paused are not made up for); False if unknown."""
        return self._system.schedules.resume(schedule_id)

    # -- flow control ------------------------------------------------------------------------

    def limit(
        self,
        key: str,
        *,
        concurrency: int | None = None,
        rate: float | str | None = None,
        burst: int = 1,
    ) -> None:
        """Limit the tasks registered with ``limit_key=key``: at most ``concurrency``
        attempts running at once, and starts at most ``rate`` per second (a number, or
        a string such as ``"10/s"``, ``"600/m"``, ``"100/h"``), ``burst`` at once after a
        pause; retries count. ``key="*"`` sets the limits of every key without its own.
        Neither bound given: no limits for the key. Takes effect at the next scheduling
        decision; a key held back holds no slot and never delays other keys. Limits are
        configuration: they are not kept in the journal (set them again at start).
        """
        self._system.limit(key, concurrency=concurrency, rate=rate, burst=burst)

    # -- handles -------------------------------------------------------------------------------

    @overload
    def submit(
        self, func: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]: ...

    @overload
    def submit(
        self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]: ...

    @shielded
    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Register ``func(*args, **kwargs)`` (named after the function); its typed handle.

        A handle among the arguments (or inside a list, tuple or dict among them) is
        replaced by its task's result when this task runs, and that task becomes a
        dependency. The task's other fields: ``options(...).submit``. Raises as
        ``register_task``.
        """
        return self._submit(func, args, kwargs, None)

    def options(
        self,
        *,
        name: str | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        dependencies: Iterable[str | TaskHandle[Any]] | None = None,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        description: str = "",
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        executor_type: str | Executor | None = None,
        key: str | None = None,
        delay: float | timedelta | None = None,
        not_before: datetime | None = None,
        limit_key: str | None = None,
        resources: Mapping[str, int] | None = None,
    ) -> Submitter:
        """A submitter whose ``submit`` and ``map`` give their tasks these fields (as
        ``register_task``'s keywords). The values are checked here: TypeError or
        ValueError naming the one that is wrong."""
        if dependencies is not None:
            dependencies = tuple(id_of(d) for d in _ids("dependencies", dependencies))
        template = messages.SubmitTask(
            "" if name is None else name,
            _placeholder,
            priority=priority,
            dependencies=() if dependencies is None else dependencies,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            description=description,
            tags=() if tags is None else tags,
            metadata=metadata,
            executor=self.default_executor_type if executor_type is None else executor_type,
            key=key,
            delay=delay,
            not_before=not_before,
            limit_key=limit_key,
            resources=resources,
        )
        checked = template if name is not None else dataclasses.replace(template, name="x")
        build_task(checked, self._system.resolve_executor)  # raises for a bad value
        return Submitter(self, template)

    @overload
    def map(
        self, func: Callable[[T], Coroutine[Any, Any, R]], items: Iterable[T]
    ) -> list[TaskHandle[R]]: ...

    @overload
    def map(self, func: Callable[[T], R], items: Iterable[T]) -> list[TaskHandle[R]]: ...

    @shielded
    def map(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[TaskHandle[Any]]:
        """One task ``func(item)`` per item; their handles, in the items' order.

        If one item's task is refused (an argument that does not pickle for a process
        executor or a journal), the tasks of the items before it are cancelled and
        forgotten, and the error is raised.
        """
        return self._map(func, items, None)

    def _submit(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        template: messages.SubmitTask | None,
    ) -> TaskHandle[Any]:
        if template is None:
            request = messages.SubmitTask(
                _name_of(func),
                func,
                args=args,
                kwargs=kwargs or None,
                executor=self.default_executor_type,
            )
        else:
            request = dataclasses.replace(
                template,
                name=template.name or _name_of(func),
                func=func,
                args=args,
                kwargs=kwargs or None,
            )
        return TaskHandle(self, self._register(request))

    def _map(
        self,
        func: Callable[[Any], Any],
        items: Iterable[Any],
        template: messages.SubmitTask | None,
    ) -> list[TaskHandle[Any]]:
        if template is not None and template.key is not None:
            raise ValueError(
                f"map makes a task per item, and key={template.key!r} would make them one: "
                "submit each item with a key of its own"
            )
        if not isinstance(items, Iterable):
            raise TypeError(f"items must be iterable, got {show(items)}")
        handles: list[TaskHandle[Any]] = []
        try:
            for item in items:
                handles.append(self._submit(func, (item,), {}, template))
        except BaseException:
            for handle in handles:
                self._system.withdraw(handle.id)
            raise
        return handles

    # -- life cycle -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        """NEW, RUNNING, STOPPING or STOPPED (see :class:`actors.core.lifecycle.State`)."""
        return self._state

    @property
    def is_running(self) -> bool:
        return self._state is State.RUNNING and self._system.running

    async def start(self) -> None:
        """Start running tasks. Idempotent; ``execute_task`` and ``future`` also start.

        Coroutine tasks then run on the calling loop (the application's), as
        ``asyncio.create_task`` would run them, when this manager made its own system;
        otherwise (``start_sync``, ``with``, ``future()``, a system given to it) on the
        system's own loop thread.
        """
        if self._state is State.NEW and self._owns_system:
            self._system._adopt_loop(asyncio.get_running_loop())
        self.start_sync()

    @shielded
    def start_sync(self) -> None:
        """``start()`` for code without an event loop."""
        start_once(self, "the task manager", lambda: None, self._start, lambda: self.is_running)

    def _start(self, _: None) -> Callable[[], None]:
        self._system.start()
        # An ask: when start() returns, the scheduler is starting attempts.
        self._system.scheduler.ask(messages.Start(), timeout=60)
        return self._started

    def _started(self) -> None:  # under the lock
        self._state = State.RUNNING

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel what has not finished and wait (up to ``timeout`` s) for running work.

        Returns within about ``timeout`` seconds: work still running then is abandoned
        (its task is CANCELLED, ``task.abandoned`` is logged). Idempotent, and safe from
        inside one of this manager's own tasks. A manager that made its own system shuts
        it down; one given a system cancels only the tasks it registered.
        """
        if self._state in (State.STOPPING, State.STOPPED):
            return
        # On a thread of its own, not the loop's default executor: stop may stop this
        # very loop (a coroutine task stopping its manager), whose default executor is
        # joined when the loop closes, and would then wait for us.
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        # The stop goes on if our caller is cancelled (a task stopping its own manager is
        # cancelled by that very stop): a running future cannot be cancelled under it.
        done.set_running_or_notify_cancel()

        def stop_in_thread() -> None:
            try:
                self.stop_sync(timeout)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting caller
                done.set_exception(error)
            else:
                done.set_result(None)

        threading.Thread(target=stop_in_thread, name="task-manager-stop", daemon=True).start()
        await asyncio.wrap_future(done)

    @shielded
    def stop_sync(self, timeout: float = 10.0) -> None:
        """``stop()`` for code without an event loop."""
        timeout = check_seconds("timeout", timeout)
        starting = self._starting
        if starting is not None:
            starting.wait()  # a start under way ends first
        with self._lock:
            if self._state in (State.STOPPING, State.STOPPED):
                return
            self._state = State.STOPPING
        try:
            if self._owns_system:
                self._system.shutdown(wait_for_tasks=timeout)
                return
            self._system.cancel_and_wait(
                self._store.close("the task manager is stopping", owner=self),
                time.monotonic() + timeout,
                all_work=False,
            )
        finally:
            self._state = State.STOPPED

    def __enter__(self) -> TaskManager:
        """``with TaskManager() as tm:`` starts it (``start_sync``) and stops it on exit."""
        self.start_sync()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_sync()

    async def __aenter__(self) -> TaskManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- waiting and cancelling --------------------------------------------------------------

    @overload
    async def execute_task(self, task_id: TaskHandle[R]) -> R: ...

    @overload
    async def execute_task(self, task_id: str) -> Any: ...

    async def execute_task(self, task_id: str | TaskHandle[Any]) -> Any:
        """Wait for the task's outcome: its result, or raise the TaskError it ended with.

        A wait, not a run: cancelling the coroutine that awaits it leaves the task alone
        (use ``cancel_task``). Starts the manager if needed. Raises TaskNotFoundError for
        an unknown (or forgotten) id.
        """
        task_id = id_of(task_id)
        if self._state is State.NEW:
            await self.start()  # from this loop: coroutine tasks run on it
        waiter = waker_for(asyncio.get_running_loop()).watch(self._store, task_id)
        if waiter.done():
            return waiter.result()
        if not inside_a_task():  # the application waiting: the common case
            return await waiter
        with waiting_for_tasks():  # a task waiting: its slot is free meanwhile
            return await waiter

    async def wait(
        self,
        task_ids: Iterable[K],
        timeout: float | None = None,
        return_when: str = "ALL_COMPLETED",
    ) -> tuple[set[K], set[K]]:
        """Wait for tasks to end; ``(done, pending)`` sets of the ids or handles given, as
        ``asyncio.wait``.

        ``return_when``: "ALL_COMPLETED", "FIRST_COMPLETED" or "FIRST_EXCEPTION" (asyncio's
        and concurrent.futures' constants are these strings). A task that ended FAILED or
        CANCELLED counts as an exception. ``timeout`` (seconds) returns what is done by
        then; the tasks go on. Raises TaskNotFoundError for an unknown id.
        """
        if return_when not in _RETURN_WHEN:
            raise ValueError(
                f"return_when must be one of {', '.join(_RETURN_WHEN)}, got {show(return_when)}"
            )
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        given = _ids("task_ids", task_ids)
        if self._state is State.NEW:
            await self.start()  # from this loop: coroutine tasks run on it
        waker = waker_for(asyncio.get_running_loop())
        waiters = {waker.watch(self._store, task_id): task for task_id, task in given.items()}
        if not waiters:
            return set(), set()
        with waiting_for_tasks():  # inside a task: its slot is free while it waits
            done, pending = await asyncio.wait(waiters, timeout=timeout, return_when=return_when)
        for waiter in pending:
            waiter.cancel()  # our waiter only: the task goes on
        for waiter in done:
            waiter.exception()  # retrieved: no "never retrieved" warning for failures
        return {waiters[w] for w in done}, {waiters[w] for w in pending}

    async def as_completed(
        self, task_ids: Iterable[K], timeout: float | None = None
    ) -> AsyncIterator[K]:
        """Yield each task's id (or handle, as given) as it ends (well or not), first
        ended first.

        ``async for task_id in tm.as_completed(ids): ...``; read the outcome with
        ``execute_task`` (at once: it has ended) or the getters. Raises TimeoutError if
        ``timeout`` seconds pass before all have ended; TaskNotFoundError for an unknown id.
        """
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        given = _ids("task_ids", task_ids)
        if self._state is State.NEW:
            await self.start()  # from this loop: coroutine tasks run on it
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waker = waker_for(loop)
        ended: asyncio.Queue[K] = asyncio.Queue()
        waiters = []
        for task_id, task in given.items():
            waiter = waker.watch(self._store, task_id)
            waiter.add_done_callback(functools.partial(_put_id, ended, task))
            waiters.append(waiter)
        try:
            for _ in waiters:
                left = None if deadline is None else max(0.0, deadline - loop.time())
                with waiting_for_tasks():  # inside a task: its slot is free meanwhile
                    ended_id = await asyncio.wait_for(ended.get(), left)
                yield ended_id
        finally:
            for waiter in waiters:
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()  # retrieved
                else:
                    waiter.cancel()

    @shielded
    def future(self, task_id: str | TaskHandle[Any]) -> concurrent.futures.Future[Any]:
        """A concurrent.futures.Future of the task's outcome, for code without asyncio.

        Starts the manager if needed. The future cannot be cancelled through itself:
        use ``cancel_task``.
        """
        task_id = id_of(task_id)
        future = self._store.future(task_id)
        if self._state is State.NEW:
            self.start_sync()
        return future

    async def cancel_task(self, task_id: str | TaskHandle[Any]) -> bool:
        """Cancel the task; True if it ended CANCELLED because of this call.

        A waiting or pending task ends at once; a running one is interrupted (its
        ``current_task().cancelled`` turns True) and ends CANCELLED at once. False for a
        task that had already finished. Raises TaskNotFoundError for an unknown id.
        """
        return self.cancel_task_sync(task_id)

    @shielded
    def cancel_task_sync(self, task_id: str | TaskHandle[Any]) -> bool:
        """``cancel_task()`` for code without an event loop."""
        task_id = id_of(task_id)
        return self._system.cancel(task_id)

    # -- reading ------------------------------------------------------------------------------

    @shielded
    def forget(self, task_id: str | TaskHandle[Any]) -> bool:
        """Drop a finished task now (its getters then return None); False if it is unknown,
        unfinished, or an unfinished task depends on it. Futures already handed out keep
        their outcome. Finished tasks the program no longer holds, past
        ``keep_finished``, are forgotten on their own."""
        task_id = id_of(task_id)
        return self._store.forget(task_id)

    @shielded
    def get_task(self, task_id: str | TaskHandle[Any]) -> Task | None:
        """A snapshot of the task (safe to read, changes nothing), or None."""
        task_id = id_of(task_id)
        return self._store.snapshot(task_id)

    @shielded
    def get_task_status(self, task_id: str | TaskHandle[Any]) -> TaskStatus | None:
        task_id = id_of(task_id)
        return self._store.status(task_id)

    @shielded
    def get_task_result(self, task_id: str | TaskHandle[Any]) -> Any:
        """The result if the task COMPLETED, else None."""
        task_id = id_of(task_id)
        task = self._store.snapshot(task_id)
        return task.result if task is not None and task.status is TaskStatus.COMPLETED else None

    @shielded
    def get_task_error(self, task_id: str | TaskHandle[Any]) -> TaskError | None:
        """The TaskError if the task ended FAILED or CANCELLED, else None."""
        task_id = id_of(task_id)
        task = self._store.snapshot(task_id)
        if task is None or task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return None
        return task.error

    @shielded
    def get_task_progress(self, task_id: str | TaskHandle[Any]) -> tuple[float, str] | None:
        """(fraction 0..1, message), or None for an unknown id."""
        task_id = id_of(task_id)
        task = self._store.snapshot(task_id)
        return None if task is None else (task.progress, task.progress_message)

    @shielded
    def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        return self._store.snapshots(lambda t: t.status is status)

    @shielded
    def get_tasks_by_tag(self, tag: str) -> list[Task]:
        return self._store.snapshots(lambda t: tag in t.tags)

    @shielded
    def get_all_tasks(self) -> list[Task]:
        return self._store.snapshots()

    @shielded
    def graph(
        self, format: str = "mermaid", task_ids: Iterable[str | TaskHandle[Any]] | None = None
    ) -> str:
        """The dependency graph as text: "mermaid" (renders on GitHub) or "dot" (Graphviz).

        One node per task, labelled with its name and styled by its status (a Mermaid
        ``classDef``, a DOT ``fillcolor`` per status), an edge from each dependency to its
        dependent. ``task_ids``: only these tasks (and the edges between them); None for
        every task the system knows. Nodes come in registration order, so the same graph
        gives the same text. Raises ValueError for another format or an unknown id.
        """
        check_text("format", format)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {show(format)}")
        if task_ids is None:
            return render(self._store.snapshots(), format)
        wanted = set(_ids("task_ids", task_ids))  # the ids
        tasks = self._store.snapshots(lambda t: t.task_id in wanted)
        if len(tasks) != len(wanted):
            missing = sorted(wanted - {task.task_id for task in tasks})
            raise ValueError(f"task_ids has unknown task ids: {show(missing)}")
        return render(tasks, format)

    @shielded
    def get_metrics(self) -> dict[str, Any]:
        """Counts by status (the old keys), whether it runs, and each executor's load.

        ``abandoned_tasks`` (and each executor's ``abandoned``) counts work still running
        whose attempt already ended: a thread stuck in a C call past its timeout or
        cancel. It holds its slot (in ``busy``) until the call returns. An executor that
        runs elsewhere counts its own (``Executor.abandoned``: Dask worker threads).
        ``limits``: per limit key, its limits, attempts ``running``, tasks ``waiting``
        (held back or queued) and ``tokens`` left; ``resources``: each one's capacity and
        what is free.
        """
        counts = self._store.counts()
        busy, abandoned = self._store.load()
        for name, executor in self._system.executors.items():
            held = executor.abandoned
            if held:
                busy[name] += held
                abandoned[name] += held
        return {
            "is_running": self.is_running,
            "total_tasks": sum(counts.values()),
            "registered_tasks": self._store.registered,
            "forgotten_tasks": self._store.forgotten,
            "pending_tasks": counts[TaskStatus.PENDING],
            "running_tasks": counts[TaskStatus.RUNNING],
            "completed_tasks": counts[TaskStatus.COMPLETED],
            "failed_tasks": counts[TaskStatus.FAILED],
            "cancelled_tasks": counts[TaskStatus.CANCELLED],
            "waiting_tasks": counts[TaskStatus.WAITING],
            "abandoned_tasks": sum(abandoned.values()),
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "limits": self._limits_report(),
            "resources": self._resources_report(),
            "executors": {
                name: {
                    "type": executor.kind,
                    "capacity": executor.capacity,
                    "prefetch": executor.prefetch,
                    "busy": busy[name],
                    "abandoned": abandoned[name],
                }
                for name, executor in self._system.executors.items()
            },
        }

    def _limits_report(self) -> dict[str, dict[str, Any]]:
        """Per limit key: its limits, attempts running, tasks waiting, tokens left."""
        table = self._system.limits
        gate = table.gate
        shown = {} if gate is None else gate.report()
        for key in table.limits:
            shown.setdefault(key, {"running": 0, "waiting": 0, "tokens": None})
        for key, entry in shown.items():
            limit = table.of(key)
            entry["limit"] = None if limit is None else limit.as_dict()
        return shown

    def _resources_report(self) -> dict[str, dict[str, int]]:
        table = self._system.limits
        gate = table.gate
        free = table.resources if gate is None else dict(gate.free)
        return {
            name: {"capacity": units, "free": free.get(name, units)}
            for name, units in table.resources.items()
        }


provide_task_manager(lambda system: TaskManager(system=system))
