"""Registration: a task's fields checked at the boundary and made into a Task.

Every way in (``TaskManager.register_task``, the ``SubmitTask`` message, the compat
layers) goes through :func:`build_task`: one set of checks, one wording, nothing
registered when one fails.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import pickle
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.core.limits import check_resources
from actors.core.messages import SubmitTask
from actors.core.task import Task, TaskPriority, frozen_mapping, owned_metadata
from actors.runtime.hosted import uuid4_text
from supervision._validate import check_int, check_seconds, check_text, show

__all__ = [
    "MAX_RETRIES",
    "build_task",
    "durable_form",
    "is_coroutine_function",
    "moment_of",
    "new_task_id",
    "seconds_of",
    "start_time",
]

new_task_id = uuid4_text
"""A new task id: a random (version 4) UUID in its usual text form. Its bits come from
the runtime's private generator (the one actor URNs use), so an application's
``random.seed`` cannot repeat an id."""


MAX_RETRIES = 1_000_000
"""The most retries a task may ask for (10**30 is forever, and overflows the journal)."""

_CO_COROUTINE = inspect.CO_COROUTINE
_CO_ASYNC_GENERATOR = inspect.CO_ASYNC_GENERATOR
_YIELDS = inspect.CO_ASYNC_GENERATOR | inspect.CO_GENERATOR
_ASYNC_GENERATOR, _GENERATOR = "an async generator", "a generator"
_FunctionType = types.FunctionType


def _kind(func: Callable[..., Any]) -> tuple[bool, str]:
    """(is a coroutine function, what it is if it yields: "an async generator", "a
    generator", or ""), found once per task.

    A plain function (most tasks) is read from its code flags directly; everything else
    (methods, partials, callable objects) goes through ``inspect``.
    """
    if type(func) is _FunctionType:
        flags = func.__code__.co_flags
        if flags & _YIELDS:
            return False, _ASYNC_GENERATOR if flags & _CO_ASYNC_GENERATOR else _GENERATOR
        return bool(flags & _CO_COROUTINE), ""
    unwrapped = func
    while isinstance(unwrapped, functools.partial):
        unwrapped = unwrapped.func
    coroutine = is_coroutine_function(unwrapped)
    if not isinstance(unwrapped, types.FunctionType | types.MethodType):
        unwrapped = getattr(unwrapped, "__call__", unwrapped)  # noqa: B004 - a callable object
    if inspect.isasyncgenfunction(unwrapped):
        return coroutine, _ASYNC_GENERATOR
    if inspect.isgeneratorfunction(unwrapped):
        return coroutine, _GENERATOR
    return coroutine, ""


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


def build_task(
    spec: SubmitTask,
    resolve_executor: Callable[[object, bool], str],
    check_call: Callable[[object, str, Callable[..., Any], tuple[Any, ...], Any], None]
    | None = None,
) -> Task:
    """Check every field of ``spec`` and build its Task (not registered yet).

    ``resolve_executor(executor, is_coroutine)`` names the executor the task runs on
    (or raises). ``check_call(executor, name, func, args, kwargs)`` lets that executor
    refuse the work (a process executor's must pickle). Raises TypeError/ValueError
    naming the parameter and the value.
    """
    name, func, args, kwargs = spec.name, spec.func, spec.args, spec.kwargs
    priority, max_retries, retry_delay = spec.priority, spec.max_retries, spec.retry_delay
    timeout, description, metadata = spec.timeout, spec.description, spec.metadata
    task_id, executor = spec.task_id, spec.executor
    check_text("name", name, allow_empty=False, storable=True)
    if not callable(func):
        raise TypeError(f"func must be callable, got {show(func)}")
    coroutine, yields = _kind(func)
    if yields:
        raise TypeError(
            f"func must not be {yields} function (calling it only creates a generator "
            f"object: its body never runs): got {show(func)}; wrap it in a function that "
            "consumes it"
        )
    if type(args) is not tuple and not isinstance(args, tuple | list):
        raise TypeError(f"args must be a tuple or list, got {show(args)}")
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping, got {show(kwargs)}")
        for key in kwargs:
            if not isinstance(key, str):
                raise TypeError(f"kwargs keys must be strings, got {show(key)}")
    if type(priority) is not TaskPriority:
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
    # The defaults (most tasks) skip the general checks.
    if type(max_retries) is not int or max_retries:
        max_retries = check_int(
            "max_retries",
            max_retries,
            maximum=MAX_RETRIES,
            why="a bound that still ends; the journal keeps it as a 64-bit integer",
        )
    if type(retry_delay) is not float or retry_delay != 1.0:
        retry_delay = check_seconds("retry_delay", retry_delay)
    if timeout is not None:
        timeout = check_seconds("timeout", timeout, allow_zero=False)
    dependency_ids = _strings("dependencies", spec.dependencies, "task ids")
    tag_names = _strings("tags", spec.tags, "strings")
    for tag in tag_names:
        check_text("tags", tag, storable=True)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {show(metadata)}")
        for key in metadata:
            if isinstance(key, str):
                check_text("metadata keys", key, storable=True)
    if type(description) is not str or description:
        check_text("description", description, storable=True)
    if task_id is not None:
        check_text("task_id", task_id, allow_empty=False, storable=True)
    not_before = None
    if spec.delay is not None or spec.not_before is not None:
        not_before = start_time(spec.delay, spec.not_before)
    limit_key, resources = spec.limit_key, spec.resources
    if limit_key is not None:
        check_text("limit_key", limit_key, allow_empty=False, storable=True)
    if resources is not None:
        resources = check_resources("resources", resources, minimum=0)
    executor_name = resolve_executor(executor, coroutine)
    arguments = tuple(args)
    if check_call is not None:
        check_call(executor, executor_name, func, arguments, kwargs)
    return Task(
        task_id=new_task_id() if task_id is None else str(task_id),
        name=name,
        func=func,
        args=arguments,
        kwargs=frozen_mapping(kwargs),
        priority=priority,
        dependencies=dependency_ids,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        description=description,
        tags=tag_names,
        metadata=owned_metadata(metadata),
        executor=executor_name,
        is_coroutine=coroutine,
        context=contextvars.copy_context(),
        not_before=not_before,
        limit_key=limit_key,
        resources=frozen_mapping({k: v for k, v in resources.items() if v})
        if resources
        else frozen_mapping(None),
    )


def seconds_of(name: str, value: object, *, allow_zero: bool = True) -> float:
    """A duration given as seconds or a ``timedelta``, checked (``check_seconds``)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_seconds(name, value, allow_zero=allow_zero)


def moment_of(name: str, value: object) -> datetime:
    """``value`` as an aware UTC datetime: a naive one is local time (as
    ``datetime.timestamp`` reads it). TypeError naming ``name`` for anything else."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {show(value)}")
    try:
        return datetime.fromtimestamp(value.timestamp(), UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise ValueError(f"{name} is out of range, got {show(value)} ({error})") from None


def func_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a task's function, for people reading the journal."""
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def start_time(delay: object, not_before: object) -> datetime:
    """When a task given ``delay`` (seconds or timedelta) or ``not_before`` may start."""
    if delay is not None and not_before is not None:
        raise ValueError(
            f"give delay or not_before, not both (got delay={show(delay)}, "
            f"not_before={show(not_before)})"
        )
    if delay is not None:
        return datetime.fromtimestamp(time.time() + seconds_of("delay", delay), UTC)
    return moment_of("not_before", not_before)


def _strings(name: str, values: object, what: str) -> tuple[str, ...]:
    """``values`` as a tuple of distinct strings, in order; TypeError naming ``name`` else."""
    if type(values) is tuple and not values:  # the default, and most tasks'
        return ()
    if isinstance(values, str | bytes | bytearray | Mapping) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of {what}, got {show(values)}")
    items = tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be a list of {what}, got {show(item)} in it")
    return tuple(dict.fromkeys(items)) if len(items) > 1 else items


_IMPORTABLE = (
    "must be importable by its qualified name (a module-level function, or a method of a "
    "module-level class)"
)


def durable_form(task: Task) -> bytes:
    """What a journal keeps of ``task``: its function, arguments and metadata, pickled,
    and a dict of the fields fixed at registration that have no column (``not_before``
    as a timestamp, ``limit_key``, ``resources``; read back as {} from the 4-tuples of
    older files).

    The function must be importable by its qualified name, so that another process can
    find it again, and everything must pickle. Called before anything is registered.

    Raises:
        TypeError: naming what cannot be kept (``func``, ``args[1]``, ``kwargs['x']``...).
    """
    _check_importable(task.func)
    extra: dict[str, Any] = {}
    if task.not_before is not None:
        extra["not_before"] = task.not_before.timestamp()
    if task.limit_key is not None:
        extra["limit_key"] = task.limit_key
    if task.resources:
        extra["resources"] = dict(task.resources)
    whole = (task.func, task.args, dict(task.kwargs), dict(task.metadata), extra)
    try:
        return pickle.dumps(whole, pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - find the part that fails, below
        failure: Exception = error
    parts: list[tuple[str, object]] = [("func", task.func)]
    parts += [(f"args[{i}]", value) for i, value in enumerate(task.args)]
    parts += [(f"kwargs[{name!r}]", value) for name, value in task.kwargs.items()]
    parts += [(f"metadata[{name!r}]", value) for name, value in task.metadata.items()]
    for where, value in parts:
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - this is the part
            failure, culprit = error, where
            break
    else:
        culprit = "func, args, kwargs and metadata together"
        value = whole
    raise TypeError(
        f"a journaled task's {culprit} must pickle, got {show(value)} "
        f"({type(failure).__name__}: {failure})"
    ) from None


_importable: list[object] = [None]  # the function found importable last (bulk: the same)


def _check_importable(func: Callable[..., Any]) -> None:
    """TypeError unless ``func`` (under its partials and bound methods) is found again
    by its module and qualified name, as pickle finds a function."""
    if func is _importable[0]:
        return
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, types.MethodType):
        target = target.__func__  # the instance (or class) itself is pickled by value
    elif isinstance(target, types.BuiltinMethodType) and not isinstance(
        getattr(target, "__self__", None), types.ModuleType | None
    ):
        return  # a builtin bound to an object ([].append): pickle decides, by its object
    elif not isinstance(target, types.FunctionType | types.BuiltinFunctionType | type):
        target = type(target)  # a callable object: found by its class
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        where = f"{module}.{qualname}" if module and qualname else "no qualified name"
        raise TypeError(
            f"a journaled task's func {_IMPORTABLE}, got {show(func)} ({where}: a lambda or "
            "a function defined inside another cannot be found by another process)"
        )
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if getattr(found, "__func__", found) is not target:
        raise TypeError(
            f"a journaled task's func {_IMPORTABLE}, got {show(func)} ({module}.{qualname} "
            "does not lead back to it)"
        )
    if type(func) is types.FunctionType:  # (a bound method is new at every access)
        _importable[0] = func
