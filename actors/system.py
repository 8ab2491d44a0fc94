"""ActorSystem: the embeddable runtime. Wiring, and the system's lifecycle; no task logic.

It builds the parts (task store, event bus, executors, the scheduler actor hosted on the
threads that finish attempts), puts the actors in a supervision tree, and moves through
explicit states: NEW, RUNNING, STOPPING, STOPPED, or FAILED when the tree gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pykka

from actors.core import messages
from actors.core.context import shielded
from actors.core.events import EventBus
from actors.core.executor import MAX_WORKERS, Executor
from actors.core.faults import FaultPoints
from actors.core.lifecycle import State
from actors.core.limits import Limit, LimitTable, check_resources
from actors.core.protocol import Address, LimitsDue, Notices, Registered, Settled, Wake
from actors.core.registration import build_task, durable_form, moment_of, new_task_id, seconds_of
from actors.core.scheduler import SchedulerActor
from actors.core.schedules import ScheduleInfo, Schedules, check_timing, read_schedule
from actors.core.store import NoRoom, TaskStore
from actors.core.task import TERMINAL, Task, TaskPriority, TaskStatus
from actors.core.task_actor import AttemptRuntime, ExecutorActor, Launcher, RetrySettings
from actors.errors import (
    JournalError,
    TaskDependencyError,
    TaskExecutionError,
    TaskNotFoundError,
)
from actors.executors.local import AsyncExecutor, SequentialExecutor, ThreadPoolExecutor
from actors.runtime.hosted import AsyncioDispatcher
from actors.runtime.inline import InlineDispatcher
from actors.runtime.sync import handoff
from supervision import (
    ChildSpec,
    ConfigError,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
    timer_service,
)
from supervision._log import get_logger
from supervision._validate import check_int, check_seconds, check_text, show
from supervision.config import importable, read_toml, spec_from_mapping

if TYPE_CHECKING:
    from actors.durability.journal import Journal
    from actors.manager import TaskManager

__all__ = [
    "EXECUTOR_TYPES",
    "ActorSystem",
    "ScheduleInfo",
    "new_task_id",
    "provide_task_manager",
]

# How ActorSystem.task_manager makes the system's manager: given by actors.manager when it
# is imported (the manager sits above the system, which never imports it).
_make_manager: Callable[[ActorSystem], TaskManager] | None = None


def provide_task_manager(factory: Callable[[ActorSystem], TaskManager]) -> None:
    """Called by ``actors.manager`` on import: how a system makes its own TaskManager."""
    global _make_manager
    _make_manager = factory


class _Startable(Protocol):
    @property
    def _lock(self) -> contextlib.AbstractContextManager[Any]: ...

    _state: State
    _starting: threading.Event | None


_Claimed = TypeVar("_Claimed")


def start_once(
    host: _Startable,
    what: str,
    claim: Callable[[], _Claimed],
    start: Callable[[_Claimed], Callable[[], None]],
    running: Callable[[], bool],
) -> bool:
    """The start a system and a manager share; True if this call started ``host``.

    The first caller claims the start under ``host._lock`` (``claim()``), then runs
    ``start(claimed)`` with no lock held, and the callable it returns under the lock. A
    caller meanwhile waits for it and raises unless ``running()`` then; a failed start
    can be tried again. test_no_lock_is_held_while_an_executor_starts guards the pattern.
    """
    with host._lock:
        if host._state is State.RUNNING:
            return False
        starting = host._starting
        if starting is None:
            if host._state is not State.NEW:
                raise RuntimeError(f"{what} is {host._state.value}; make a new one")
            claimed = claim()
            mine = host._starting = threading.Event()
    if starting is not None:  # another thread starts it
        starting.wait()
        if not running():  # (read again after the wait)
            raise RuntimeError(f"{what} is {host._state.value}; make a new one")
        return False
    try:
        finish = start(claimed)
    except BaseException:
        with host._lock:
            host._starting = None
        mine.set()
        raise
    with host._lock:
        finish()
    mine.set()
    return True


LOOP_RESCUE_DELAY = 0.05
"""How long a loop of the library's may keep the scheduler's slice it was lent before the
scheduler's own thread takes it back (a coroutine task blocking that loop)."""

EXECUTOR_TYPES = ("auto", "async", "thread_pool", "sequential", "process")
# Executor types made on first use (a process pool costs processes: only when asked for).
_ON_FIRST_USE = frozenset({"process"})

# The executor classes a name or a TOML ``type`` stands for, as (module, class): the
# heavy ones are imported when first asked for, not by ``import actors``.
_EXECUTOR_CLASSES = {
    "thread_pool": ("actors.executors.local", "ThreadPoolExecutor"),
    "async": ("actors.executors.local", "AsyncExecutor"),
    "sequential": ("actors.executors.local", "SequentialExecutor"),
    "process": ("actors.executors.process", "ProcessExecutor"),
    "dask": ("actors.executors.dask", "DaskExecutor"),
}


def _executor_class_of(kind: str) -> type[Executor]:
    module, name = _EXECUTOR_CLASSES[kind]
    found: type[Executor] = getattr(importlib.import_module(module), name)
    return found


_log = get_logger("actors")

# The LocalCluster options a ``type = "dask"`` executor table may give (without address).
DASK_CLUSTER_OPTIONS = (
    "n_workers",
    "threads_per_worker",
    "processes",
    "memory_limit",
    "host",
    "scheduler_port",
    "dashboard_address",
)


class _SystemSupervisor(Supervisor):
    """The system's supervisors: daemon threads, so a forgotten shutdown never hangs exit."""

    use_daemon_thread = True


class ActorSystem:
    """The task system's runtime, for applications that embed it: executors, the
    scheduler actor and the application's own actors (``spawn``) under one supervision
    tree (see docs/architecture.md). The tasks live in a store outside the actors: a
    restarted scheduler loses none.

    ::

        with ActorSystem(max_concurrent_tasks=8) as system:
            tm = system.task_manager
            system.scheduler.ask(messages.SubmitTask("fetch", fetch, args=(url,)))

    The scheduler starts paused: ``await tm.start()`` or ``scheduler.tell(messages.Start())``.

    Args:
        max_concurrent_tasks: attempts running at once, over all executors.
        executors: executors added to the three defaults ("thread_pool", "async",
            "sequential"); one with a default's name replaces it.
        max_retry_delay: the cap of ``retry_delay * 2**(n-1)``.
        retry_jitter: up to this many seconds of random delay added to each retry.
        actors: the supervision tree for the application's own actors (children and
            strategy of the "actors" supervisor); ``spawn`` adds more.
        name: shown in logs.
        autostart: start the actors now (False: at ``start()``, as TaskManager does).
        keep_finished: how many finished tasks that the program no longer holds stay
            readable (the newest); older ones are forgotten (getters return None), so a
            long-running service stays flat in memory. A finished task is kept while the
            program holds the id registration returned (or a handle to it). None keeps
            every one. With a journal, forgotten tasks leave it too.
        journal: the path of an SQLite file that keeps every task (created if missing):
            a registered task survives a crash of the process, and a system made on the
            file later reads the finished tasks back and runs the unfinished ones again
            (see docs/guides/journal.md). Raises JournalError for a file that is not a
            journal, or one another live process holds.
        journal_sync: "normal" (a commit survives a crash of the process; the default)
            or "full" (it survives a power loss too: every commit is fsynced).
        resources: units of each resource the system has (``{"gpu": 2}``); a task's
            ``resources`` are held while its attempt runs.
        max_pending: registration beyond this many unfinished tasks waits for room (up
            to ``pending_timeout`` seconds, then TimeoutError); None: no bound.
        pending_timeout: how long a registration waits for room (default 60 s).
    """

    def __init__(
        self,
        *,
        max_concurrent_tasks: int = 4,
        executors: Iterable[Executor] = (),
        max_retry_delay: float = 60.0,
        retry_jitter: float = 0.0,
        actors: SupervisorSpec | None = None,
        name: str = "actors",
        autostart: bool = True,
        keep_finished: int | None = 10_000,
        journal: str | os.PathLike[str] | None = None,
        journal_sync: str = "normal",
        resources: Mapping[str, int] | None = None,
        max_pending: int | None = None,
        pending_timeout: float = 60.0,
    ) -> None:
        check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        capacities = {} if resources is None else check_resources("resources", resources, minimum=0)
        if max_pending is not None:
            check_int("max_pending", max_pending, minimum=1)
        pending_timeout = check_seconds("pending_timeout", pending_timeout)
        if journal is not None and not isinstance(journal, str | os.PathLike):
            raise TypeError(f"journal must be a path (str or os.PathLike), got {show(journal)}")
        journal_path = None if journal is None else os.fspath(journal)
        if journal_path == "":
            raise ValueError("journal must be a path, got ''")
        if journal_sync not in ("normal", "full"):
            raise ValueError(f'journal_sync must be "normal" or "full", got {show(journal_sync)}')
        if keep_finished is not None:
            check_int("keep_finished", keep_finished)
        max_retry_delay = check_seconds("max_retry_delay", max_retry_delay, allow_zero=False)
        retry_jitter = check_seconds("retry_jitter", retry_jitter)
        check_text("name", name, allow_empty=False)
        if actors is not None and not isinstance(actors, SupervisorSpec):
            raise TypeError(f"actors must be a SupervisorSpec, got {actors!r}")
        given = list(executors)
        for executor in given:
            if not isinstance(executor, Executor):
                raise TypeError(f"executors must be Executor instances, got {executor!r}")
        names = [e.name for e in given]
        if len(set(names)) != len(names):
            raise ValueError(f"executor names must be unique, got {names}")
        for executor in given:  # all or none: a refused system claims no executor
            executor._claim(self, name, check_only=True)
        # Last of the checks: a refused journal leaves nothing claimed or started.
        self._journal = None
        if journal_path is not None:  # sqlite3 is imported by a system that has a journal
            from actors.durability.journal import Journal

            self._journal = Journal.open(journal_path, journal_sync)
        self.journal_sync = journal_sync

        self.name = name
        self._max_concurrent_tasks = max_concurrent_tasks
        self.faults = FaultPoints()
        """Fault points of this system's actors (armed by reliability tests only)."""
        self.events = EventBus()
        self.keep_finished = keep_finished
        self.store = TaskStore(self.events, keep_finished=keep_finished, max_pending=max_pending)
        self.limits = LimitTable(capacities)
        """The limits per key (``TaskManager.limit``) and the resources."""
        self.max_pending = max_pending
        self.pending_timeout = pending_timeout
        self._timer = timer_service()
        self._lock = threading.RLock()
        self._state = State.NEW
        self._starting: threading.Event | None = None  # set once the tree started (or failed to)
        self._closing = False
        self._escalation: RestartIntensityExceeded | None = None
        self._manager: TaskManager | None = None
        self._root: pykka.ActorRef[Supervisor] | None = None
        self._apps = actors or SupervisorSpec(strategy=Strategy.ONE_FOR_ONE)
        self._scheduler_address = Address()
        # The scheduler runs on a thread that has just finished an attempt (while it tells
        # the scheduler so), else on its own thread.
        self._scheduler_dispatcher = InlineDispatcher(
            lambda: handoff.host,
            name=f"{name}-scheduler",
            rescue=lambda callback: self._timer.call_later(LOOP_RESCUE_DELAY, callback),
        )
        self._notices = Notices(self._scheduler_address)
        self._runtime = AttemptRuntime(
            self.store,
            self._notices,
            RetrySettings(max_retry_delay, retry_jitter),
            self._timer,
            self.faults,
            self._loop_for_coroutines,
        )
        self.schedules = Schedules(self.store, self._timer, self._register_run)
        """The system's schedules (``schedule``, ``TaskManager.schedule``)."""
        self._executors: dict[str, Executor] = {}
        self._launchers: dict[str, Launcher] = {}
        self._supervisors: dict[str, Address] = {}
        self._default_async = AsyncExecutor(name="async")
        defaults: list[Executor] = [
            # As many threads as tasks may run at once, up to MAX_WORKERS (its threads start
            # only as they are needed; more waits than that belong on the async executor).
            ThreadPoolExecutor(min(max_concurrent_tasks, MAX_WORKERS), name="thread_pool"),
            self._default_async,
            SequentialExecutor(name="sequential"),
        ]
        for executor in [e for e in defaults if e.name not in names] + given:
            executor._claim(self, name)
            self._put_executor(executor)  # before the tree starts: no actor to start
        try:
            if self._journal is not None:
                self._recover(self._journal)
            if autostart:
                self.start()
        except BaseException:
            # A failed constructor holds nothing: the journal's writer thread, its
            # files and its lock are let go (a retry in this process opens it again).
            with contextlib.suppress(Exception):
                self.shutdown(wait_for_tasks=0)
            raise

    @property
    def journal(self) -> str | None:
        """The journal's path, or None."""
        return None if self._journal is None else self._journal.path

    def _recover(self, journal: Journal) -> None:
        """Read the journal's tasks back into the store (before the scheduler starts: it
        reads the store when it does). A task that cannot run again (its function no
        longer imports, a dependency is gone) ends FAILED saying why.

        A task's executor made on first use ("process") is made now, as its registration
        made it. One the application adds itself (an Executor instance) may not be there
        yet: its tasks wait for it (the scheduler passes over an executor it does not
        have) and ``journal.executor_missing`` is logged at warning; ``add_executor``
        (or registering a task on that instance) lets them run."""
        restored = [journal.restore(row) for row in journal.found]
        journal.found = []
        known = {r.task.task_id for r in restored}
        tasks: list[tuple[int, Task, str | None, bool]] = []
        missing_executors: dict[str, int] = {}
        for r in restored:
            task = r.task
            problem = r.problem
            if problem is None and task.status not in TERMINAL:
                if missing := [d for d in task.dependencies if d not in known]:
                    problem = f"its dependency {missing[0]!r} is not in the journal"
                elif task.executor in self._executors:
                    pass
                elif task.executor in _ON_FIRST_USE:
                    self._made_on_first_use(task.executor)
                else:
                    missing_executors[task.executor] = missing_executors.get(task.executor, 0) + 1
            if problem is not None:
                task.status = TaskStatus.FAILED
                kind = TaskDependencyError if "dependency" in problem else TaskExecutionError
                task.error = kind(
                    f"task {task.name!r} ({task.task_id}) cannot run again from journal "
                    f"{journal.path}: {problem}",
                    task.task_id,
                    {"journal": journal.path, "seq": r.seq},
                )
                # It ends now: never before it started (a running attempt's start).
                task.completed_at = task.completed_at or datetime.now(UTC)
                _log.error(
                    "journal.task_not_restored",
                    path=journal.path,
                    task_id=task.task_id,
                    task_name=task.name,
                    error=problem,
                )
            tasks.append((r.seq, task, r.key, problem is not None))
        for name, count in missing_executors.items():
            _log.warning(
                "journal.executor_missing",
                path=journal.path,
                executor=name,
                tasks=count,
                hint="its tasks wait until an executor of that name is added (add_executor)",
            )
        retries = {r.task.task_id: r.retry_at for r in restored if r.retry_at is not None}
        self.store.restore(tasks, journal, retries)
        for row in journal.found_schedules:
            try:
                schedule = read_schedule(row)
                executor = schedule.options.get("executor")
                if executor in _ON_FIRST_USE:
                    self._made_on_first_use(executor)
                self.schedules.restore(schedule)
            except ValueError as unreadable:
                _log.error(
                    "journal.schedule_not_restored",
                    path=journal.path,
                    schedule_id=row["schedule_id"],
                    schedule_name=row["name"],
                    error=str(unreadable),
                )
        journal.found_schedules = []
        unfinished = sum(1 for _seq, task, _key, _changed in tasks if task.status not in TERMINAL)
        _log.info(
            "journal.recovered",
            path=journal.path,
            finished=len(tasks) - unfinished,
            unfinished=unfinished,
        )

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | str | os.PathLike[str], *, autostart: bool = True
    ) -> ActorSystem:
        """Build a system from a mapping or a TOML file.

        Keys: ``name``, ``max_concurrent_tasks``, ``max_retry_delay``, ``retry_jitter``,
        ``executors`` (a list of ``{name, type, max_workers | max_concurrency}``),
        ``actors`` (a supervision tree as ``tree_from_config`` reads it), ``schedules``
        (a list of ``{name, func = "package.module:name", args, every | cron, ...}``, see
        docs/guides/time.md), ``resources``, ``max_pending``, ``pending_timeout`` and
        ``limits`` (a table per key of ``concurrency``, ``rate``, ``burst``). Errors are
        ConfigErrors naming their place.
        """
        source: str | None = None
        if isinstance(config, str | os.PathLike):
            source = os.fspath(config)
            config = read_toml(source)
        if not isinstance(config, Mapping):
            raise TypeError(f"from_config takes a mapping or a TOML path, got {config!r}")
        allowed = (
            "actors",
            "executors",
            "journal",
            "journal_sync",
            "keep_finished",
            "limits",
            "max_concurrent_tasks",
            "max_pending",
            "max_retry_delay",
            "name",
            "pending_timeout",
            "resources",
            "retry_jitter",
            "schedules",
        )
        for key in config:
            if key not in allowed:
                raise ConfigError(
                    key, f"unknown key (expected one of {', '.join(allowed)})", source
                )
        options: dict[str, Any] = {}
        for key in (
            "name",
            "max_concurrent_tasks",
            "max_retry_delay",
            "retry_jitter",
            "keep_finished",
            "journal",
            "journal_sync",
            "resources",
            "max_pending",
            "pending_timeout",
        ):
            if key in config:
                options[key] = config[key]
        executors = [
            _executor_from_config(raw, f"executors[{i}]", source)
            for i, raw in enumerate(config.get("executors", []))
        ]
        if "actors" in config:
            options["actors"] = spec_from_mapping(config["actors"], where="actors", source=source)
        limits = config.get("limits", {})
        if not isinstance(limits, Mapping):
            raise ConfigError("limits", f"expected a table of keys, got {limits!r}", source)
        checked: dict[str, Limit] = {}
        for key, raw in limits.items():
            if not isinstance(raw, Mapping) or set(raw) - {"concurrency", "rate", "burst"}:
                raise ConfigError(
                    f"limits.{key}",
                    f"expected a table of concurrency, rate and burst, got {raw!r}",
                    source,
                )
            try:
                checked[key] = Limit.checked(
                    raw.get("concurrency"), raw.get("rate"), raw.get("burst", 1)
                )
            except (TypeError, ValueError) as error:
                raise ConfigError(f"limits.{key}", str(error), source) from error
        raw_schedules = config.get("schedules", [])
        if not isinstance(raw_schedules, list):
            raise ConfigError(
                "schedules", f"expected a list of tables, got {raw_schedules!r}", source
            )
        schedules = [
            _schedule_from_config(raw, f"schedules[{i}]", source)
            for i, raw in enumerate(raw_schedules)
        ]
        try:
            system = cls(executors=executors, autostart=autostart, **options)
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError("", str(error), source) from error
        for key, limit in checked.items():
            system.limits.set(key, limit)
        for i, (name, func, args, fields) in enumerate(schedules):
            try:
                system._keep_schedule(name, func, args, fields)
            except (TypeError, ValueError) as error:
                system.shutdown(wait_for_tasks=0)  # a refused config leaves nothing running
                raise ConfigError(f"schedules[{i}]", str(error), source) from error
        return system

    def _keep_schedule(
        self, name: str, func: Callable[..., Any], args: tuple[Any, ...], fields: dict[str, Any]
    ) -> None:
        """A schedule a configuration declares: one read back from the journal with its
        name and the same function, arguments and times is kept (its counts too); one
        that differs is replaced."""
        for known in self.schedules.infos():
            if known.name != name:
                continue
            same = (
                known.every == fields.get("every")
                and known.cron == fields.get("cron")
                and known.timezone == (fields.get("timezone") or ("UTC" if known.cron else None))
                and self.schedules.runs(known.schedule_id) == (func, args, fields.get("kwargs"))
            )
            if same:
                return
            self.schedules.remove(known.schedule_id)
        self.schedule(name, func, *args, **fields)

    # -- life cycle -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def running(self) -> bool:
        return self._state is State.RUNNING

    @property
    def max_concurrent_tasks(self) -> int:
        """Attempts running at once, over all executors (fixed for the system's life)."""
        return self._max_concurrent_tasks

    @shielded
    def start(self) -> None:
        """Start the supervision tree (idempotent). Returns once every actor runs.

        No lock is held while the tree starts: a second caller waits for the first one's
        start to end (test_no_lock_is_held_while_an_executor_starts guards the pattern).

        Raises:
            RuntimeError: the system is stopping, stopped or failed.
        """
        # From the claim on, the executors' list is the tree's: executors added later
        # start their own actors (add_executor).
        if start_once(
            self, f"actor system {self.name}", self._tree, self._start_tree, lambda: self.running
        ):
            self.schedules.start()
            _log.info("system.started", system=self.name)

    def _start_tree(self, spec: SupervisorSpec) -> Callable[[], None]:
        root = _SystemSupervisor.start(spec, name=self.name, on_escalate=self._escalated)

        def started() -> None:  # under the lock
            self._root = root
            if self._state is State.NEW:  # (a tree that gave up at once made it FAILED)
                self._state = State.RUNNING

        return started

    def _tree(self) -> SupervisorSpec:
        """The system's supervision tree, with the executors it has now."""
        return SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=10,
            within_seconds=10.0,
            children=[
                ChildSpec(
                    "executors",
                    SupervisorSpec(
                        max_restarts=10,
                        within_seconds=10.0,
                        children=[self._executor_child(name) for name in self._executors],
                    ),
                ),
                ChildSpec(
                    "scheduler",
                    SchedulerActor,
                    args=(
                        self._scheduler_dispatcher,
                        self.store,
                        self.events,
                        self._scheduler_address,
                        self._notices,
                        self._max_concurrent_tasks,
                        self._launchers,
                        self._timer,
                        self._submit_without_waiting,
                        self.cancel,
                        self.faults,
                        self.limits,
                    ),
                ),
                ChildSpec("actors", self._apps),
            ],
        )

    @shielded
    def shutdown(self, *, wait_for_tasks: float = 10.0) -> None:
        """Cancel unfinished tasks, wait up to ``wait_for_tasks`` seconds for running work
        to return, stop every actor. Returns within about ``wait_for_tasks`` seconds:
        work still running then is abandoned (logged as ``task.abandoned``; its thread,
        a daemon, ends when the work does). Registration is refused from the first
        moment on. Idempotent; safe from inside a task.
        """
        wait_for_tasks = check_seconds("wait_for_tasks", wait_for_tasks)
        starting = self._starting
        if starting is not None:
            starting.wait()  # a start under way ends first (no lock is held meanwhile)
        with self._lock:
            if self._state in (State.STOPPING, State.STOPPED) or self._closing:
                return
            was = self._state
            self._closing = True
            if was is not State.FAILED:  # a failed system stays FAILED: that is its verdict
                self._state = State.STOPPING
        deadline = time.monotonic() + wait_for_tasks
        self.schedules.stop()
        self.cancel_and_wait(
            self.store.close(f"actor system {self.name} is shut down"), deadline, all_work=True
        )
        if was is State.RUNNING and self._root is not None:
            try:
                self._root.stop(block=True, timeout=max(1.0, deadline - time.monotonic()))
            except pykka.Timeout:
                _log.warning("system.actors_still_stopping", system=self.name)
        for executor in self._executors.values():
            executor.close(wait=False)
        self._scheduler_dispatcher.shutdown(wait=False)
        if self._journal is not None:
            # What is unfinished stays so in the journal (the stop's cancels are not
            # journaled): the next system on it runs those tasks.
            self._journal.close()
        with self._lock:
            if self._state is State.STOPPING:
                self._state = State.STOPPED
        _log.info("system.stopped", system=self.name)

    def __enter__(self) -> ActorSystem:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _escalated(self, error: RestartIntensityExceeded) -> None:
        """The whole tree gave up (on the root supervisor's thread): the system FAILED.

        Unfinished tasks end FAILED saying why, their waiters wake, registration is refused.
        """
        with self._lock:
            if self._state is not State.RUNNING and self._starting is None:
                return
            if self._state in (State.STOPPING, State.STOPPED, State.FAILED):
                return
            self._state = State.FAILED
            self._escalation = error
        reason = f"actor system {self.name} failed: {error}"
        unfinished = self.store.close(reason)

        def failed(task: Task) -> TaskExecutionError:
            return TaskExecutionError(
                f"task {task.name!r} ({task.task_id}) cannot finish: {reason}",
                task.task_id,
                {"system_failed": True},
                original_error=error,
            )

        for attempt in self.store.abort(unfinished, failed):
            attempt.interrupt()
        _log.error("system.failed", system=self.name, error=str(error))

    # -- the parts ------------------------------------------------------------------------

    @property
    def scheduler(self) -> pykka.ActorRef[Any]:
        """The scheduler actor: send it the messages of :mod:`actors.messages`."""
        ref = self._scheduler_address.ref
        if ref is None or self._state is not State.RUNNING:
            raise RuntimeError(f"actor system {self.name} is not running ({self._state.value})")
        return ref

    @property
    def task_manager(self) -> TaskManager:
        """The system's TaskManager (created on first use)."""
        with self._lock:
            if self._manager is None:
                if _make_manager is None:  # actors.manager not imported: `import actors` does
                    raise RuntimeError("import actors before asking a system for its manager")
                self._manager = _make_manager(self)
            return self._manager

    @property
    def executors(self) -> dict[str, Executor]:
        return dict(self._executors)

    @property
    def supervisor(self) -> pykka.ActorRef[Supervisor] | None:
        """The root of the system's supervision tree (None before ``start``), to look into
        (``which_children``); the system owns it: stop the system, not the supervisor."""
        return self._root

    @shielded
    def spawn(
        self,
        actor_class: type[pykka.Actor] | Callable[..., pykka.ActorRef[Any]],
        *actor_args: Any,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        restart: Restart = Restart.PERMANENT,
    ) -> pykka.ActorRef[Any]:
        """Start one of the application's actors under the system's "actors" supervisor.

        The constructor's arguments come after the class or as ``args=``/``kwargs=``
        (as in ``ChildSpec`` and ``register_task``): ``spawn(Collector, args=(system,))``.
        A restart calls the constructor again with the same arguments.
        """
        if actor_args and args is not None:
            raise TypeError(
                "give the actor's positional arguments after its class or as args=, not both"
            )
        if args is not None and not isinstance(args, tuple | list):
            raise TypeError(f"args must be a tuple or list, got {show(args)}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping, got {show(kwargs)}")
        if name is not None:
            check_text("name", name, allow_empty=False)
        if self._root is None or self._state is not State.RUNNING:
            raise RuntimeError(f"actor system {self.name} is not running")
        child_id = name or f"{getattr(actor_class, '__name__', 'actor')}-{uuid.uuid4().hex[:8]}"
        spec = ChildSpec(
            child_id,
            actor_class,
            args=tuple(args) if args is not None else actor_args,
            kwargs=kwargs,
            restart=restart,
        )
        apps = self._child("actors")
        ref: pykka.ActorRef[Any] = apps.proxy().start_child(spec).get(timeout=60)
        return ref

    def _child(self, child_id: str) -> pykka.ActorRef[Any]:
        assert self._root is not None
        for child in self._root.proxy().which_children().get(timeout=60):
            if child.id == child_id and child.ref is not None:
                ref: pykka.ActorRef[Any] = child.ref
                return ref
        raise RuntimeError(f"actor system {self.name}: {child_id} is not running")

    def _put_executor(self, executor: Executor) -> threading.Event | None:
        """Under the lock: add ``executor`` to the system's tables. Before the tree
        starts, it is one of the tree's executors (None); after, the caller starts its
        actor (``_start_executor``, with no lock held) once the event is set."""
        name = executor.name
        address = Address()
        self._executors[name] = executor
        self._supervisors[name] = address
        if self._starting is None:
            self._launchers[name] = Launcher(executor, self._runtime, address)
        return self._starting

    def _start_executor(self, executor: Executor, tree_started: threading.Event) -> None:
        """Start the actor of an executor added to a started tree (it opens the executor),
        and only then show the executor to the scheduler and wake it. On failure the
        executor leaves the system, and the tasks registered for it meanwhile end FAILED
        (test_an_executor_that_fails_to_start_fails_its_tasks)."""
        name = executor.name
        tree_started.wait()
        try:
            if self._state is not State.RUNNING:
                raise RuntimeError(f"actor system {self.name} is {self._state.value}")
            self._child("executors").proxy().start_child(self._executor_child(name)).get(timeout=60)
        except BaseException as error:
            self._executor_failed(executor, error)
            raise
        self._launchers[name] = Launcher(executor, self._runtime, self._supervisors[name])
        self._scheduler_address.tell(Wake())

    def _executor_failed(self, executor: Executor, error: BaseException) -> None:
        name = executor.name
        with self._lock:
            if self._executors.get(name) is executor:
                del self._executors[name]
                self._supervisors.pop(name, None)
        reason = f"its executor {name!r} failed to start: {error!r}"
        stranded = [
            task.task_id
            for task in self.store.snapshots(lambda t: t.executor == name)
            if task.status not in TERMINAL
        ]

        def failed(task: Task) -> TaskExecutionError:
            return TaskExecutionError(
                f"task {task.name!r} ({task.task_id}) cannot run: {reason}",
                task.task_id,
                {"executor": name},
                original_error=error if isinstance(error, Exception) else None,
            )

        for attempt in self.store.abort(stranded, failed):
            attempt.interrupt()
        for task_id in stranded:
            self._notices.post(Settled(task_id))
        _log.error("executor.start_failed", system=self.name, executor=name, error=repr(error))

    def _executor_child(self, name: str) -> ChildSpec:
        return ChildSpec(
            name,
            ExecutorActor,
            args=(self._executors[name], self._runtime, self._supervisors[name]),
        )

    @shielded
    def add_executor(self, executor: Executor) -> None:
        """Add an executor (its actor starts now if the system runs). Idempotent."""
        if not isinstance(executor, Executor):
            raise TypeError(f"add_executor takes an Executor, got {executor!r}")
        with self._lock:
            known = self._executors.get(executor.name)
            if known is executor:
                return
            if known is not None:
                raise ValueError(f"another executor is already named {executor.name!r}")
            if not self._state.accepts_tasks:
                raise RuntimeError(f"actor system {self.name} is {self._state.value}")
            executor._claim(self, self.name)
            tree_started = self._put_executor(executor)
        if tree_started is not None:
            self._start_executor(executor, tree_started)

    def resolve_executor(self, executor_type: object, coroutine: bool) -> str:
        """The name of the executor a task runs on; "auto" looks at the function.

        Raises ValueError for an unknown name, or for a coroutine function on a system
        with no AsyncExecutor to run it.
        """
        if not isinstance(executor_type, str):  # a str (most calls) first: Executor is an ABC
            if not isinstance(executor_type, Executor):
                raise TypeError(
                    f"executor_type must be a string or an Executor, got {executor_type!r}"
                )
            if coroutine and not self._runs_coroutines(type(executor_type)):
                self._require_loop()
            return executor_type.name
        if executor_type == "auto":
            name = "async" if coroutine else "thread_pool"
        elif executor_type not in self._executors and executor_type not in _ON_FIRST_USE:
            known = ", ".join(sorted({*EXECUTOR_TYPES, *self._executors}))
            raise ValueError(f"unknown executor type {executor_type!r} (expected one of {known})")
        else:
            name = executor_type
        if (
            coroutine
            and type(self._executors.get(name)) is not AsyncExecutor  # (most: no more checks)
            and not self._runs_coroutines(self._executor_class(name))
        ):
            self._require_loop()
        return name

    def _executor_class(self, name: str) -> type[Executor] | None:
        executor = self._executors.get(name)
        if executor is not None:
            return type(executor)
        return _executor_class_of(name) if name in _ON_FIRST_USE else None

    @staticmethod
    def _runs_coroutines(kind: type[Executor] | None) -> bool:
        """Whether an executor of this class runs coroutine functions itself (else the
        system's loop does)."""
        return kind is not None and (issubclass(kind, AsyncExecutor) or kind.runs_elsewhere)

    def _check_call(
        self,
        executor: object,
        name: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
    ) -> None:
        """Let the task's executor refuse its work (at registration, before anything is
        registered): a process executor's must pickle."""
        if isinstance(executor, str):  # most calls: no ABC isinstance
            kind = self._executor_class(name)
        else:
            assert isinstance(executor, Executor)  # resolve_executor refused anything else
            kind = type(executor)
        if kind is not None and kind.runs_elsewhere:
            kind.check_call(func, args, kwargs)

    def _made_on_first_use(self, name: str) -> None:
        """Make and add the default executor ``name`` ("process") if it is not there yet."""
        with self._lock:
            if name in self._executors:
                return
            if not self._state.accepts_tasks:
                raise RuntimeError(f"actor system {self.name} is {self._state.value}")
            executor = _executor_class_of(name)(name=name)
            executor._claim(self, self.name)
            tree_started = self._put_executor(executor)
        if tree_started is not None:
            self._start_executor(executor, tree_started)

    def _require_loop(self) -> None:
        if self._coroutine_executor() is None:
            raise ValueError(
                f"actor system {self.name!r} has no AsyncExecutor to run a coroutine function "
                f"(its executors: {', '.join(sorted(self._executors))}); add one, or keep "
                'the default "async"'
            )

    def _adopt_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run coroutine tasks on ``loop`` (the application's, a manager was started from
        it): for the default "async" executor, while the system has not started yet."""
        with self._lock:
            executor = self._executors.get("async")
            if self._state is State.NEW and executor is self._default_async:
                executor._adopt(loop)

    def _coroutine_executor(self) -> AsyncExecutor | None:
        """The executor whose loop runs coroutines given to thread executors."""
        executor = self._executors.get("async")
        if isinstance(executor, AsyncExecutor):
            return executor
        return next((e for e in self._executors.values() if isinstance(e, AsyncExecutor)), None)

    def _loop_for_coroutines(self) -> AsyncioDispatcher:
        executor = self._coroutine_executor()
        if executor is None:
            raise RuntimeError(f"actor system {self.name} has no AsyncExecutor to run coroutines")
        return executor.loop_dispatcher

    # -- flow control -----------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, int]:
        """Units of each resource the system has (fixed for its life)."""
        return dict(self.limits.resources)

    def limit(
        self,
        key: str,
        *,
        concurrency: int | None = None,
        rate: float | str | None = None,
        burst: int = 1,
    ) -> None:
        """Set the limits of the tasks whose ``limit_key`` is ``key`` ("*": of every key
        without limits of its own); see ``TaskManager.limit``."""
        check_text("key", key, allow_empty=False, storable=True)
        limit = Limit.checked(concurrency, rate, burst)
        unbounded = limit.concurrency is None and limit.rate is None
        self.limits.set(key, None if unbounded else limit)
        if self._scheduler_address.ref is not None:
            self._notices.post(LimitsDue())

    # -- tasks ------------------------------------------------------------------------------

    @shielded
    def submit(self, request: messages.SubmitTask) -> str:
        """Check and register a task; returns its id. Safe from any thread.

        Raises (with nothing registered): TypeError/ValueError for bad arguments,
        TaskDependencyError for an unknown dependency or a cycle, ValueError for a
        duplicate id, RuntimeError if the system is stopping, stopped or failed.
        """
        return self.register(request)

    def _submit_without_waiting(self, request: messages.SubmitTask) -> str:
        """``submit`` for the scheduler's own SubmitTask message: it never waits for room
        under ``max_pending`` (the room comes from the scheduler itself), it refuses.
        Guarded by tests/actors/test_limits.py::test_a_submit_message_beyond_max_pending_is_refused
        """
        commit_later.no_wait = True
        try:
            return self.register(request)
        except NoRoom:
            raise TimeoutError(self.no_room_message(request.name)) from None
        finally:
            commit_later.no_wait = False

    def register(self, request: messages.SubmitTask, *, owner: object = None) -> str:
        """Check and register the task ``request`` describes; its id.

        The one way in: ``submit``, ``TaskManager.register_task`` and the compat layers
        come here (they are ``@shielded``; this is not, to save a wrapper per task).
        ``owner`` (a TaskManager) is who may stop it. ``request.key``: a key already
        known returns its task's id and registers nothing. With a journal, returns once
        the task's row is committed (see ``commit_later`` for a registration that does
        not wait). Raises as ``submit``, and JournalError.
        """
        later = commit_later.done
        if later is not None:
            commit_later.done = None  # for this registration only
        try:
            task_id, plain = self._add(owner, request)
        except NoRoom as full:
            if commit_later.no_wait:
                raise  # (an awaiting registration waits for room itself)
            task_id, plain = self._add_when_room(owner, request, full)
        new = plain is not None
        journal = self._journal
        if later is not None:
            self._when_committed(task_id, plain, later)
            return task_id
        if journal is not None:
            try:
                journal.sync()  # the row is durable before the task can run
                if new:
                    self._check_kept(task_id)
            except BaseException:
                if new:  # not durable: not registered either
                    self.withdraw(task_id)
                raise
        if plain is not None:
            self._announce(plain)  # the plain id: the scheduler must not hold the TaskId
        return task_id

    def _add_when_room(
        self, owner: object, request: messages.SubmitTask, full: NoRoom
    ) -> tuple[str, str | None]:
        """``_add`` once there is room under ``max_pending``, waiting up to
        ``pending_timeout``; TimeoutError saying the bound was reached else."""
        deadline = time.monotonic() + self.pending_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not full.room.wait(left):
                raise TimeoutError(self.no_room_message(request.name))
            try:
                return self._add(owner, request)
            except NoRoom as again:
                full = again

    def no_room_message(self, name: str) -> str:
        return (
            f"task {name!r} is not registered: max_pending={self.max_pending} unfinished "
            f"tasks were reached and no room came within pending_timeout="
            f"{self.pending_timeout:g} s (the producer outpaces the work)"
        )

    def _register_run(self, request: messages.SubmitTask) -> str:
        """A schedule's run (on the timer thread): registered without waiting for its
        journal commit; a run the journal refuses is withdrawn and logged."""
        commit_later.done = _run_committed  # (register takes it: read once, cleared)
        return self._submit_without_waiting(request)

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
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        executor: str | Executor = "auto",
        limit_key: str | None = None,
        resources: Mapping[str, int] | None = None,
    ) -> str:
        """Register ``func(*args, **kwargs)`` as a task every ``every`` seconds (or
        timedelta), or at each time the ``cron`` expression names (in ``timezone``, an
        IANA name; UTC by default); its schedule id. See ``TaskManager.schedule``.

        Raises (with nothing added): TypeError/ValueError naming a bad value (a cron
        expression cronsim refuses, an unknown time zone, both or neither of ``every``
        and ``cron``...); with a journal, TypeError if the function is not importable
        or its arguments do not pickle.
        """
        if not self._state.accepts_tasks:
            raise RuntimeError(f"actor system {self.name} is {self._state.value}")
        seconds = None if every is None else seconds_of("every", every, allow_zero=False)
        begins = None if start is None else moment_of("start", start).timestamp()
        ends = None if end is None else moment_of("end", end).timestamp()
        zone, zone_name = check_timing(
            seconds, cron, timezone, begins, ends, misfire, max_instances
        )
        options: dict[str, Any] = {
            "priority": priority,
            "max_retries": max_retries,
            "retry_delay": retry_delay,
            "timeout": timeout,
            "description": description,
            "tags": tuple(tags),
            "metadata": dict(metadata) if metadata else None,
            "executor": executor,
        }
        if limit_key is not None or resources is not None:  # (older schedules lack them)
            options["limit_key"] = limit_key
            options["resources"] = None if resources is None else dict(resources)
        request = messages.SubmitTask(name, func, args=args, kwargs=kwargs, **options)
        task = build_task(request, self.resolve_executor, self._check_call)  # raises
        if task.resources:
            self.limits.check_task(task)  # ValueError: more than the system has
        options["priority"] = int(task.priority)
        if self._journal is not None:
            durable_form(task)  # TypeError: not importable, does not pickle
            self._journal.check()
        if not isinstance(executor, str):  # kept by name: the executor joins the system
            self.add_executor(executor)
            options["executor"] = executor.name
        elif task.executor in _ON_FIRST_USE:  # made now, not by a run on the timer thread
            self._made_on_first_use(task.executor)
        return self.schedules.add(
            name,
            func,
            tuple(args),
            kwargs,
            options,
            every=seconds,
            cron=cron,
            zone=zone,
            zone_name=zone_name,
            start=begins,
            end=ends,
            misfire=misfire,
            max_instances=max_instances,
            durable=self._journal is not None,
        )

    def _check_kept(self, task_id: str) -> None:
        """After its commit: raise JournalError if the journal refused the task's row."""
        assert self._journal is not None
        refused = self._journal.refused(task_id)
        if refused is not None:
            task = self.store.task(task_id)
            name = task.name if task is not None else "?"
            raise JournalError(
                f"task {name!r} ({task_id}) cannot be kept in journal {self._journal.path} "
                f"({refused}); it is not registered (the journal goes on)"
            )

    def _add(self, owner: object, request: messages.SubmitTask) -> tuple[str, str | None]:
        """Check a task and add it to the store (its row queued for the journal); its id,
        and False if that is the id of the task first registered with ``key``."""
        if not self._state.accepts_tasks:
            raise RuntimeError(f"actor system {self.name} is {self._state.value}")
        key, executor = request.key, request.executor
        if key is not None:
            check_text("key", key, allow_empty=False, storable=True)
        task = build_task(request, self.resolve_executor, self._check_call)
        if task.resources:
            self.limits.check_task(task)  # ValueError: more than the system has
        journal = self._journal
        durable = None
        if journal is not None:
            durable = durable_form(task)  # TypeError: not importable, does not pickle
            journal.check()
        if task.executor in _ON_FIRST_USE and task.executor not in self._executors:
            self.store.check(task)
            self._made_on_first_use(task.executor)
        elif not isinstance(executor, str) and self._executors.get(executor.name) is not executor:
            # An instance given to the manager, new to the system: refuse the task before
            # the executor is added (its actor started), not after. Guarded by
            # tests/actors/test_bad_input.py::test_a_refused_task_does_not_add_its_executor
            self.store.check(task)
            self.add_executor(executor)
        # RuntimeError once the system stops: atomic.
        return self.store.register(task, owner, key, durable)

    def _when_committed(
        self, task_id: str, plain: str | None, done: Callable[[str, BaseException | None], None]
    ) -> None:
        """Tell ``done(task_id, error)`` once the task's row is committed (at once without
        a journal); the task is shown to the scheduler (by its ``plain`` id, None if not
        new) only then."""
        journal = self._journal
        if journal is None:
            if plain is not None:
                self._announce(plain)
            done(task_id, None)
            return

        def committed(error: BaseException | None) -> None:  # on the committing thread
            if plain is not None:
                if error is None:
                    try:
                        self._check_kept(plain)
                    except JournalError as refused:
                        error = refused
                if error is None:
                    self._announce(plain)
                else:
                    self.withdraw(plain)
            done(task_id, error)

        journal.when_committed(journal.posted, committed)

    def _announce(self, task_id: str) -> None:
        # A scheduler that has not started yet copies the store when it does (it
        # publishes its address first, under the store's lock), so it needs no notice.
        if self._scheduler_address.ref is not None:
            self._notices.post(Registered(task_id))

    def withdraw(self, task_id: str) -> None:
        """A task whose row could not be committed is not registered either."""
        self.store.cancel(task_id, lasting=False)
        self.store.forget(task_id)

    def cancel_and_wait(self, task_ids: list[str], deadline: float, *, all_work: bool) -> None:
        """A stop's sweep: cancel ``task_ids``, then wait until the monotonic ``deadline``
        for their attempts' work to return (``all_work``: every attempt's, abandoned ones'
        too); what still runs then is abandoned (``task.abandoned``, at warning).

        A listed task that ended and was forgotten before its cancel is no error.
        """
        for task_id in task_ids:
            with contextlib.suppress(TaskNotFoundError):
                self.cancel(task_id, lasting=False)
        mine = None if all_work else set(task_ids)
        store = self.store
        for attempt in store.unreleased():
            if mine is not None and attempt.task_id not in mine:
                continue
            if not store.when_released(attempt).wait(max(0.0, deadline - time.monotonic())):
                _log.warning(
                    "task.abandoned",
                    system=self.name,
                    task_id=attempt.task_id,
                    task_name=attempt.task.name,
                    attempt=attempt.number,
                )

    @shielded
    def cancel(self, task_id: str, *, lasting: bool = True) -> bool:
        """Cancel a task; True if it ended CANCELLED because of this call. ``lasting``
        False: a stop's cancel, which leaves the task unfinished in the journal."""
        cancelled, attempt = self.store.cancel(task_id, lasting=lasting)
        if cancelled:
            if attempt is not None:
                attempt.interrupt()
            self._notices.post(Settled(task_id))
        return cancelled


class _CommitLater(threading.local):
    done: Callable[[str, BaseException | None], None] | None = None
    no_wait: bool = False
    """A registration beyond ``max_pending`` raises NoRoom at once (the caller awaits)."""


commit_later = _CommitLater()


"""Set on a thread just before it registers a task: that registration returns without
waiting for its journal commit, and ``done(task_id, error)`` is told after it (on the
committing thread). Used by ``TaskManager.register_task_async``."""


def _run_committed(task_id: str, error: BaseException | None) -> None:
    if error is not None:
        _log.error("schedule.run_not_kept", task_id=task_id, error=repr(error))


_SCHEDULE_KEYS = (
    "name",
    "func",
    "args",
    "kwargs",
    "every",
    "cron",
    "timezone",
    "misfire",
    "max_instances",
    "priority",
    "max_retries",
    "retry_delay",
    "timeout",
    "description",
    "tags",
    "executor",
    "limit_key",
    "resources",
)


def _schedule_from_config(
    raw: object, where: str, source: str | None
) -> tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """A ``[[schedules]]`` table: (name, function, args, the other keywords of
    ``ActorSystem.schedule``); the function named "package.module:name"."""
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"expected a table, got {raw!r}", source)
    for key in raw:
        if key not in _SCHEDULE_KEYS:
            expected = ", ".join(_SCHEDULE_KEYS)
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {expected})", source)
    for key in ("name", "func"):
        if key not in raw:
            raise ConfigError(f"{where}.{key}", "missing required key", source)
    name = raw["name"]
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name", f"expected a string, got {name!r}", source)
    func = importable(raw["func"], f"{where}.func", source)
    args = raw.get("args", [])
    if not isinstance(args, list):
        raise ConfigError(f"{where}.args", f"expected a list, got {args!r}", source)
    fields = {k: v for k, v in raw.items() if k not in ("name", "func", "args")}
    return name, func, tuple(args), fields


def _executor_from_config(raw: object, where: str, source: str | None) -> Executor:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"expected a table, got {raw!r}", source)
    kinds: dict[str, tuple[str, ...]] = {
        "thread_pool": ("max_workers", "interrupt"),
        "async": ("max_concurrency",),
        "sequential": ("interrupt",),
        "process": ("max_workers", "prefetch"),
        "dask": ("address", "prefetch", *DASK_CLUSTER_OPTIONS),
    }
    kind = raw.get("type")
    if kind not in kinds:
        raise ConfigError(f"{where}.type", f"{kind!r} is not one of {', '.join(kinds)}", source)
    keys = kinds[kind]
    allowed = {"name", "type", *keys}
    for key in raw:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {expected})", source)
    options = {k: v for k, v in raw.items() if k in allowed - {"type"}}
    try:
        return _executor_class_of(kind)(**options)
    except (TypeError, ValueError, ImportError) as error:
        raise ConfigError(where, str(error), source) from error
