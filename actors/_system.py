"""ActorSystem: the embeddable runtime (supervision tree, scheduler, executors, task store)."""

from __future__ import annotations

import inspect
import os
import random
import threading
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pykka

from actors import messages
from actors._executors import (
    AsyncExecutor,
    Executor,
    ExecutorActor,
    Launcher,
    RetrySettings,
    SequentialExecutor,
    ThreadPoolExecutor,
    _Runtime,
    is_coroutine_function,
)
from actors._protocol import Address, Notices, Registered, Settled
from actors._runtime import AsyncioDispatcher
from actors._scheduler import DependencyGraph, ExecutorEntry, ReadyQueue, SchedulerActor
from actors._store import TaskStore
from actors._task import Task, TaskPriority, frozen_mapping
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
from supervision.config import spec_from_mapping

if TYPE_CHECKING:
    from actors._manager import TaskManager

_random_bits = random.getrandbits

__all__ = ["EXECUTOR_TYPES", "ActorSystem"]

EXECUTOR_TYPES = ("auto", "async", "thread_pool", "sequential")

_log = get_logger("actors")


class _SystemSupervisor(Supervisor):
    """The system's supervisors: daemon threads, so a forgotten shutdown never hangs exit."""

    use_daemon_thread = True


_UUID_VERSION_BITS = (0xF000 << 64) | (0xC000 << 48)
_UUID_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def new_task_id() -> str:
    """A new task id: a random (version 4) UUID in its usual text form.

    What ``str(uuid.uuid4())`` gives, for a fifth of its cost (it is paid per task): the
    bits come from ``random`` (seeded from os.urandom, reseeded in a forked child), not
    from a system call each, and no UUID object is built.
    """
    value = _random_bits(128) & ~_UUID_VERSION_BITS | _UUID_VERSION_4
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class ActorSystem:
    """The task system's runtime, for applications that embed it.

    Its supervision tree: a root supervisor over the executors' supervisor (one executor
    actor per executor, each hosting its task actors), the scheduler actor, and the
    application's own actors (``spawn``). Timers come from the process-wide timer service.
    The tasks live in a store outside the actors: a restarted scheduler loses none.

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
    ) -> None:
        check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        max_retry_delay = check_seconds("max_retry_delay", max_retry_delay, allow_zero=False)
        retry_jitter = check_seconds("retry_jitter", retry_jitter)
        if actors is not None and not isinstance(actors, SupervisorSpec):
            raise TypeError(f"actors must be a SupervisorSpec, got {actors!r}")
        self.name = name
        self.store = TaskStore()
        self.store.max_concurrent = max_concurrent_tasks
        self._timer = timer_service()
        self._lock = threading.RLock()
        self._scheduler_address = Address()
        self._notices = Notices(self._scheduler_address)
        self._runtime = _Runtime(
            self.store,
            self._scheduler_address,
            self._notices,
            RetrySettings(max_retry_delay, retry_jitter),
            self._loop_for_coroutines,
        )
        self._executors: dict[str, Executor] = {}
        self._executor_table: dict[str, ExecutorEntry] = {}
        defaults: list[Executor] = [
            ThreadPoolExecutor(name="thread_pool"),
            AsyncExecutor(name="async"),
            SequentialExecutor(name="sequential"),
        ]
        given = list(executors)
        for executor in given:
            if not isinstance(executor, Executor):
                raise TypeError(f"executors must be Executor instances, got {executor!r}")
        names = [e.name for e in given]
        if len(set(names)) != len(names):
            raise ValueError(f"executor names must be unique, got {names}")
        for executor in given:  # all or none: a refused system claims no executor
            executor._claim(self, name, check_only=True)
        for executor in [e for e in defaults if e.name not in names] + given:
            executor._claim(self, name)
            self._executors[executor.name] = executor
            self._executor_table[executor.name] = self._entry(executor)
        self._ready = ReadyQueue(self.store, self._executor_table)
        self._graph = DependencyGraph(self.store, self._ready, self._scheduler_address, self._timer)
        self._runtime.dispatch_next = self._ready.dispatch
        self._runtime.settle = self._graph.settled
        self._apps = actors or SupervisorSpec(strategy=Strategy.ONE_FOR_ONE)
        self._root: pykka.ActorRef[Supervisor] | None = None
        self._state = "new"
        self._escalation: RestartIntensityExceeded | None = None
        self._manager: TaskManager | None = None
        if autostart:
            self.start()

    # -- configuration ----------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | str | os.PathLike[str], *, autostart: bool = True
    ) -> ActorSystem:
        """Build a system from a mapping or a TOML file.

        Keys: ``name``, ``max_concurrent_tasks``, ``max_retry_delay``, ``retry_jitter``,
        ``executors`` (a list of ``{name, type, max_workers | max_concurrency}``) and
        ``actors`` (a supervision tree as ``tree_from_config`` reads it). Errors are
        ConfigErrors naming their place.
        """
        source: str | None = None
        if isinstance(config, str | os.PathLike):
            source = os.fspath(config)
            try:
                with open(source, "rb") as file:
                    config = tomllib.load(file)
            except OSError as error:
                raise ConfigError(
                    "", f"cannot read file: {error.strerror or error}", source
                ) from error
            except tomllib.TOMLDecodeError as error:
                raise ConfigError("", f"invalid TOML: {error}", source) from error
        if not isinstance(config, Mapping):
            raise TypeError(f"from_config takes a mapping or a TOML path, got {config!r}")
        allowed = (
            "actors",
            "executors",
            "max_concurrent_tasks",
            "max_retry_delay",
            "name",
            "retry_jitter",
        )
        for key in config:
            if key not in allowed:
                raise ConfigError(
                    key, f"unknown key (expected one of {', '.join(allowed)})", source
                )
        options: dict[str, Any] = {}
        for key in ("name", "max_concurrent_tasks", "max_retry_delay", "retry_jitter"):
            if key in config:
                options[key] = config[key]
        executors = [
            _executor_from_config(raw, f"executors[{i}]", source)
            for i, raw in enumerate(config.get("executors", []))
        ]
        if "actors" in config:
            options["actors"] = spec_from_mapping(config["actors"], where="actors", source=source)
        try:
            return cls(executors=executors, autostart=autostart, **options)
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError("", str(error), source) from error

    # -- life cycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self) -> None:
        """Start the supervision tree (idempotent). Returns once every actor runs."""
        with self._lock:
            if self._state == "running":
                return
            if self._state == "stopped":
                raise RuntimeError(f"actor system {self.name} was shut down; make a new one")
            executor_children = [
                ChildSpec(
                    name,
                    ExecutorActor,
                    args=(
                        self._executors[name],
                        self._runtime,
                        self._loop_for_coroutines,
                    ),
                )
                for name in self._executor_table
            ]
            spec = SupervisorSpec(
                strategy=Strategy.ONE_FOR_ONE,
                max_restarts=10,
                within_seconds=10.0,
                children=[
                    ChildSpec(
                        "executors",
                        SupervisorSpec(
                            max_restarts=10, within_seconds=10.0, children=executor_children
                        ),
                    ),
                    ChildSpec(
                        "scheduler",
                        SchedulerActor,
                        args=(
                            self.store,
                            self._scheduler_address,
                            self._notices,
                            self._executor_table,
                            self._graph,
                            self._ready,
                            self._timer,
                            self.submit,
                            self.cancel,
                        ),
                    ),
                    ChildSpec("actors", self._apps),
                ],
            )
            self._root = _SystemSupervisor.start(spec, name=self.name, on_escalate=self._escalated)
            self._state = "running"
            _log.info("system.started", system=self.name)

    def shutdown(self, *, wait_for_tasks: float = 10.0) -> None:
        """Cancel unfinished tasks, wait (up to ``wait_for_tasks`` s) for running work to
        return, stop every actor and thread. Idempotent."""
        with self._lock:
            if self._state == "stopped":
                return
            was_running = self._state == "running"
            self._state = "stopped"
        self.store.dispatching = False
        for task in self.store.snapshots(lambda t: not t.done):
            self.cancel(task.task_id)
        try:
            self.store.when_idle().result(timeout=wait_for_tasks)
        except TimeoutError:
            _log.warning("system.work_still_running", system=self.name, running=self.store.busy())
        if was_running and self._root is not None:
            self._root.stop(block=True)
        for executor in self._executors.values():
            executor._close()
        _log.info("system.stopped", system=self.name)

    def __enter__(self) -> ActorSystem:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _escalated(self, error: RestartIntensityExceeded) -> None:
        # Runs on the root supervisor's thread when the whole tree has given up.
        self._escalation = error
        self.store.dispatching = False
        _log.error("system.failed", system=self.name, error=str(error))

    # -- the parts ------------------------------------------------------------------------

    @property
    def scheduler(self) -> pykka.ActorRef[Any]:
        """The scheduler actor: send it the messages of :mod:`actors.messages`."""
        ref = self._scheduler_address.ref
        if ref is None or self._state != "running":
            raise RuntimeError(f"actor system {self.name} is not running")
        return ref

    @property
    def task_manager(self) -> TaskManager:
        """The system's TaskManager (created on first use)."""
        from actors._manager import TaskManager

        with self._lock:
            if self._manager is None:
                self._manager = TaskManager(
                    max_concurrent_tasks=self.store.max_concurrent, system=self
                )
            return self._manager

    @property
    def executors(self) -> dict[str, Executor]:
        return dict(self._executors)

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
        if self._root is None or self._state != "running":
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
            executor._claim(self, self.name)
            entry = self._entry(executor)
            self._executors[executor.name] = executor
            self._executor_table[executor.name] = entry
            if self._state == "running":
                spec = ChildSpec(
                    executor.name,
                    ExecutorActor,
                    args=(
                        executor,
                        self._runtime,
                        self._loop_for_coroutines,
                    ),
                )
                self._child("executors").proxy().start_child(spec).get(timeout=60)

    def _entry(self, executor: Executor) -> ExecutorEntry:
        launch = Launcher(executor, self._runtime, self._loop_for_coroutines, self._timer)
        return ExecutorEntry(executor.name, executor.capacity, launch)

    def resolve_executor(
        self, executor_type: str | Executor, func: Callable[..., Any], coroutine: bool | None = None
    ) -> str:
        """The name of the executor a task runs on; "auto" looks at the function."""
        if isinstance(executor_type, Executor):
            return executor_type.name
        if not isinstance(executor_type, str):
            raise TypeError(f"executor_type must be a string or an Executor, got {executor_type!r}")
        if executor_type == "auto":
            if coroutine is None:
                coroutine = is_coroutine_function(func)
            return "async" if coroutine else "thread_pool"
        if executor_type not in self._executor_table:
            known = ", ".join(sorted({*EXECUTOR_TYPES, *self._executor_table}))
            raise ValueError(f"unknown executor type {executor_type!r} (expected one of {known})")
        return executor_type

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

    # -- tasks ------------------------------------------------------------------------------

    def submit(self, request: messages.SubmitTask) -> str:
        """Check and register a task; returns its id. Safe from any thread.

        Raises (with nothing registered): TypeError/ValueError for bad arguments,
        TaskDependencyError for an unknown dependency or a cycle, ValueError for a
        duplicate id.
        """
        r = request
        return self._submit_fields(
            name=r.name,
            func=r.func,
            args=r.args,
            kwargs=r.kwargs,
            priority=r.priority,
            dependencies=r.dependencies,
            max_retries=r.max_retries,
            retry_delay=r.retry_delay,
            timeout=r.timeout,
            task_id=r.task_id,
            description=r.description,
            tags=r.tags,
            metadata=r.metadata,
            executor=r.executor,
        )

    def _submit_fields(
        self,
        name: str,
        func: Callable[..., Any],
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        priority: TaskPriority | int = TaskPriority.NORMAL,
        dependencies: tuple[str, ...] = (),
        max_retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        task_id: str | None = None,
        description: str = "",
        tags: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
        executor: str | Executor = "auto",
    ) -> str:
        """Check and register a task from SubmitTask's fields; returns its id.

        TaskManager's path: it registers without building a message first. Raises as
        ``submit`` does, with nothing registered.
        """
        check_text("name", name, allow_empty=False)
        if not callable(func):
            raise TypeError(f"func must be callable, got {show(func)}")
        if inspect.isasyncgenfunction(func) or inspect.isasyncgenfunction(
            getattr(func, "func", None)  # a functools.partial of one
        ):
            raise TypeError(
                f"func must not be an async generator function (it yields, nothing awaits "
                f"it to an end): got {show(func)}; wrap it in a coroutine function"
            )
        if not isinstance(args, tuple | list):
            raise TypeError(f"args must be a tuple or list, got {show(args)}")
        if kwargs is not None:
            if not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping, got {show(kwargs)}")
            for key in kwargs:
                if not isinstance(key, str):
                    raise TypeError(f"kwargs keys must be strings, got {show(key)}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(
                f"priority must be a TaskPriority (LOW=1 .. CRITICAL=4), got {show(priority)}"
            )
        try:
            priority = TaskPriority(priority)
        except ValueError:
            raise ValueError(
                f"priority must be a TaskPriority (LOW=1 .. CRITICAL=4), got {show(priority)}"
            ) from None
        max_retries = check_int("max_retries", max_retries)
        retry_delay = check_seconds("retry_delay", retry_delay)
        if timeout is not None:
            timeout = check_seconds("timeout", timeout, allow_zero=False)
        dependencies = _strings("dependencies", dependencies, "task ids")
        tags = _strings("tags", tags, "strings")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {show(metadata)}")
        check_text("description", description)
        if task_id is not None:
            check_text("task_id", task_id, allow_empty=False)
        coroutine = is_coroutine_function(func)
        executor_name = self.resolve_executor(executor, func, coroutine)
        if (
            coroutine
            and self._coroutine_executor() is None
            and not isinstance(executor, AsyncExecutor)
        ):
            raise ValueError(
                f"task {name!r}: {show(func)} is a coroutine function and actor system "
                f"{self.name!r} has no AsyncExecutor to run it (its executors: "
                f'{", ".join(sorted(self._executors))}); add one, or keep the default "async"'
            )
        new_id = task_id or new_task_id()
        task = Task(
            task_id=new_id,
            name=name,
            func=func,
            args=tuple(args),
            kwargs=frozen_mapping(kwargs),
            priority=priority,
            dependencies=dependencies,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            description=description,
            tags=tags,
            metadata=frozen_mapping(metadata),
            executor=executor_name,
            is_coroutine=coroutine,
        )
        if isinstance(executor, Executor) and self._executors.get(executor.name) is not executor:
            # An instance given to the manager, new to the system: refuse the task before
            # the executor is added (its actor started), not after.
            self.store.check(task)
            self.add_executor(executor)
        self.store.register(task)
        # A scheduler that has not started yet copies the store when it does (it
        # publishes its ref first, under the store's lock), so it needs no notice.
        if self._scheduler_address.ref is not None:
            self._notices.post(Registered(task.task_id))
        return task.task_id

    def cancel(self, task_id: str) -> bool:
        """Cancel a task; True if it ended CANCELLED because of this call."""
        cancelled, attempt = self.store.cancel(task_id)
        if cancelled:
            if attempt is not None:
                attempt.interrupt()
            self._notices.post(Settled(task_id))
        return cancelled


def _strings(name: str, values: object, what: str) -> tuple[str, ...]:
    """``values`` as a tuple of distinct strings, in order; TypeError naming ``name`` else."""
    if isinstance(values, str | bytes | bytearray | Mapping) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of {what}, got {show(values)}")
    items = tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be a list of {what}, got {show(item)} in it")
    return tuple(dict.fromkeys(items)) if len(items) > 1 else items


def _executor_from_config(raw: object, where: str, source: str | None) -> Executor:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"expected a table, got {raw!r}", source)
    kinds: dict[str, tuple[type[Executor], str | None]] = {
        "thread_pool": (ThreadPoolExecutor, "max_workers"),
        "async": (AsyncExecutor, "max_concurrency"),
        "sequential": (SequentialExecutor, None),
    }
    kind = raw.get("type")
    if kind not in kinds:
        raise ConfigError(f"{where}.type", f"{kind!r} is not one of {', '.join(kinds)}", source)
    executor_class, size_key = kinds[kind]
    allowed = {"name", "type"} | ({size_key} if size_key else set())
    for key in raw:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {expected})", source)
    options = {k: v for k, v in raw.items() if k in allowed - {"type"}}
    try:
        return executor_class(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(where, str(error), source) from error
