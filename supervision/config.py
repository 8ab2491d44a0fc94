"""Build supervision trees from a mapping or a TOML file, as ``SupervisorSpec`` reads them.

A ``start`` may name only an actor class, a SupervisorSpec or a factory annotated to return
``pykka.ActorRef``, and a ``decider`` only a function annotated to return
``supervision.Directive``: a configuration file must not run an arbitrary function. Every error is
a :class:`ConfigError` naming its place (``children[1].restart: ...``); unknown keys are errors.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pykka

from supervision._spec import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    Directive,
    Restart,
    Shutdown,
    Strategy,
    SupervisorSpec,
)
from supervision._validate import check_number

__all__ = [
    "ConfigError",
    "check_childspecs",
    "importable",
    "read_toml",
    "spec_from_mapping",
    "tree_from_config",
]

_E = TypeVar("_E", bound=enum.Enum)

_SUPERVISOR_KEYS = frozenset(
    {
        "strategy",
        "max_restarts",
        "within_seconds",
        "backoff",
        "children",
        "auto_shutdown",
        "max_children",
    }
)
_CHILD_KEYS = frozenset(
    {
        "id",
        "start",
        "args",
        "kwargs",
        "restart",
        "shutdown_timeout",
        "supervisor",
        "name",
        "significant",
        "shutdown",
        "decider",
        "restart_buffer",
    }
)
_BACKOFF_KEYS = frozenset({"min_delay", "max_delay", "factor", "jitter", "reset_after"})


class ConfigError(ValueError):
    """A supervision tree description is wrong; ``where`` names the place, ``problem`` what."""

    def __init__(self, where: str, problem: str, source: str | None = None) -> None:
        self.where = where
        self.problem = problem
        self.source = source
        prefix = f"{source}: " if source else ""
        place = f"{where}: " if where else ""
        super().__init__(f"{prefix}{place}{problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.problem, self.source))


def tree_from_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> SupervisorSpec:
    """Build a SupervisorSpec from a mapping, or from the path of a TOML file."""
    if isinstance(config, Mapping):
        return spec_from_mapping(config)
    if not isinstance(config, str | os.PathLike):
        raise TypeError(
            f"tree_from_config takes a mapping or the path of a TOML file, got {config!r}"
        )
    source = os.fspath(config)
    return spec_from_mapping(read_toml(source), source=source)


def read_toml(source: str) -> dict[str, Any]:
    """The TOML file at ``source`` as a dict; ConfigError if it cannot be read or parsed."""
    import tomllib  # here: a program without TOML files does not import it

    try:
        with open(source, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError("", f"cannot read file: {error.strerror or error}", source) from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("", f"invalid TOML: {error}", source) from error


def spec_from_mapping(
    mapping: Mapping[str, Any], *, where: str = "", source: str | None = None
) -> SupervisorSpec:
    """Build a SupervisorSpec from a mapping; ``where`` prefixes error places (nesting)."""
    reader = _Reader(source)
    return reader.supervisor(mapping, where)


def importable(value: object, where: str, source: str | None = None) -> Any:
    """What ``"package.module:Name"`` names, imported; a ConfigError naming ``where``
    (and the file ``source``) if it is not of that form or cannot be imported."""
    return _Reader(source).importable(value, where)


class _Reader:
    def __init__(self, source: str | None) -> None:
        self.source = source

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(where, problem, self.source)

    def supervisor(self, data: object, where: str) -> SupervisorSpec:
        table = self.table(data, where, _SUPERVISOR_KEYS)
        kwargs: dict[str, Any] = {}
        if "strategy" in table:
            kwargs["strategy"] = self.choice(table["strategy"], _at(where, "strategy"), Strategy)
        if "max_restarts" in table:
            kwargs["max_restarts"] = self.integer(
                table["max_restarts"], _at(where, "max_restarts"), minimum=0
            )
        if "within_seconds" in table:
            kwargs["within_seconds"] = self.number(
                table["within_seconds"], _at(where, "within_seconds"), positive=True
            )
        if "backoff" in table:
            kwargs["backoff"] = self.backoff(table["backoff"], _at(where, "backoff"))
        if "auto_shutdown" in table:
            kwargs["auto_shutdown"] = self.choice(
                table["auto_shutdown"], _at(where, "auto_shutdown"), AutoShutdown
            )
        if "max_children" in table:
            kwargs["max_children"] = self.integer(
                table["max_children"], _at(where, "max_children"), minimum=1
            )
        children_where = _at(where, "children")
        raw_children = table.get("children", [])
        if not isinstance(raw_children, list | tuple):
            raise self.error(children_where, f"expected a list of tables, got {raw_children!r}")
        children: list[ChildSpec] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_children):
            child_where = f"{children_where}[{index}]"
            child = self.child(raw, child_where)
            if child.id in seen:
                raise self.error(f"{child_where}.id", f"duplicate child id {child.id!r}")
            seen.add(child.id)
            children.append(child)
        kwargs["children"] = children
        try:
            return SupervisorSpec(**kwargs)
        except (TypeError, ValueError) as error:
            raise self.error(where, str(error)) from error

    def child(self, data: object, where: str) -> ChildSpec:
        table = self.table(data, where, _CHILD_KEYS)
        if "id" not in table:
            raise self.error(_at(where, "id"), "missing required key")
        child_id = table["id"]
        if not isinstance(child_id, str) or not child_id:
            raise self.error(_at(where, "id"), f"expected a non-empty string, got {child_id!r}")
        has_start, has_supervisor = "start" in table, "supervisor" in table
        if has_start == has_supervisor:
            raise self.error(where, "give exactly one of 'start' or 'supervisor'")
        start: Any
        if has_supervisor:
            start = self.supervisor(table["supervisor"], _at(where, "supervisor"))
        else:
            start = self.startable(table["start"], _at(where, "start"))
        kwargs: dict[str, Any] = {"id": child_id, "start": start}
        if "args" in table:
            args = table["args"]
            if not isinstance(args, list | tuple):
                raise self.error(_at(where, "args"), f"expected a list, got {args!r}")
            kwargs["args"] = tuple(args)
        if "kwargs" in table:
            kw = table["kwargs"]
            if not isinstance(kw, Mapping):
                raise self.error(_at(where, "kwargs"), f"expected a table, got {kw!r}")
            kwargs["kwargs"] = dict(kw)
        if "restart" in table:
            kwargs["restart"] = self.choice(table["restart"], _at(where, "restart"), Restart)
        if "shutdown_timeout" in table:
            kwargs["shutdown_timeout"] = self.number(
                table["shutdown_timeout"], _at(where, "shutdown_timeout"), positive=False
            )
        if "shutdown" in table:
            value = table["shutdown"]
            kwargs["shutdown"] = (
                self.choice(value, _at(where, "shutdown"), Shutdown)
                if isinstance(value, str)
                else self.number(value, _at(where, "shutdown"), positive=False)
            )
        if "name" in table:
            name = table["name"]
            if not isinstance(name, str) or not name:
                raise self.error(_at(where, "name"), f"expected a non-empty string, got {name!r}")
            kwargs["name"] = name
        if "significant" in table:
            flag = table["significant"]
            if not isinstance(flag, bool):
                raise self.error(_at(where, "significant"), f"expected true or false, got {flag!r}")
            kwargs["significant"] = flag
        if "restart_buffer" in table:
            kwargs["restart_buffer"] = self.integer(
                table["restart_buffer"], _at(where, "restart_buffer"), minimum=0
            )
        if "decider" in table:
            kwargs["decider"] = self.decider(table["decider"], _at(where, "decider"))
        try:
            return ChildSpec(**kwargs)
        except (TypeError, ValueError) as error:
            raise self.error(where, str(error)) from error

    def backoff(self, data: object, where: str) -> Backoff:
        table = self.table(data, where, _BACKOFF_KEYS)
        kwargs = {
            key: self.number(value, _at(where, key), positive=False) for key, value in table.items()
        }
        try:
            return Backoff(**kwargs)
        except (TypeError, ValueError) as error:
            raise self.error(where, str(error)) from error

    def table(self, data: object, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.error(where or "<root>", f"expected a table, got {data!r}")
        for key in data:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.error(_at(where, str(key)), f"unknown key (expected one of {expected})")
        return data

    def choice(self, value: object, where: str, kind: type[_E]) -> _E:
        names = [member.value for member in kind]
        if isinstance(value, str):
            for member in kind:
                if member.value == value.lower():
                    return member
        raise self.error(where, f"{value!r} is not one of {', '.join(names)}")

    def integer(self, value: object, where: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(where, f"must be >= {minimum}, got {value!r}")
        return value

    def number(self, value: object, where: str, *, positive: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(where, f"expected a number, got {value!r}")
        if positive and value <= 0:
            raise self.error(where, f"must be > 0, got {value!r}")
        if not positive and value < 0:
            raise self.error(where, f"must be >= 0, got {value!r}")
        try:  # nan, infinities (TOML has both) and absurdly large numbers
            return check_number(where, value, minimum=0.0, above_minimum=positive)
        except (TypeError, ValueError) as error:
            raise self.error(where, str(error).removeprefix(f"{where} ")) from error

    def importable(self, value: object, where: str) -> Any:
        if not isinstance(value, str):
            raise self.error(where, f"expected a string 'package.module:Name', got {value!r}")
        module_name, sep, qualname = value.partition(":")
        if not sep or not module_name or not qualname:
            raise self.error(where, f"{value!r} is not of the form 'package.module:Name'")
        try:
            target: Any = importlib.import_module(module_name)
        except Exception as error:  # not only ImportError: a module that fails as it runs
            raise self.error(where, f"cannot import {module_name!r}: {error}") from error
        for part in qualname.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise self.error(
                    where, f"module {module_name!r} has no attribute {qualname!r}"
                ) from None
        return target

    def decider(self, value: object, where: str) -> Any:
        """What ``decider`` names: only a function annotated to return Directive."""
        target = self.importable(value, where)
        if _returns(target, Directive, "Directive"):
            return target
        raise self.error(
            where,
            f"{value!r} is {_kind(target, 'supervision.Directive')}: decider must name a "
            "function annotated to return supervision.Directive",
        )

    def startable(self, value: object, where: str) -> Any:
        """What ``start`` names, if a config may name it (see the module's docstring)."""
        target = self.importable(value, where)
        if isinstance(target, SupervisorSpec):
            return target
        if isinstance(target, type):
            if issubclass(target, pykka.Actor):
                return target
        elif _returns_actor_ref(target):
            return target
        raise self.error(
            where,
            f"{value!r} is {_kind(target)}: start must name a pykka Actor class, a "
            "SupervisorSpec, or a function annotated to return pykka.ActorRef",
        )


def _returns_actor_ref(target: object) -> bool:
    """Whether ``target`` is a function whose return annotation is ``pykka.ActorRef``
    (read, never evaluated: a string annotation is matched by name)."""
    return _returns(target, pykka.ActorRef, "ActorRef")


def _returns(target: object, kind: type, name: str) -> bool:
    """Whether ``target`` is a function annotated to return ``kind`` (a string annotation
    is matched by ``name``, never evaluated)."""
    if not inspect.isfunction(target):
        return False
    annotation = target.__annotations__.get("return")
    if isinstance(annotation, str):
        return annotation.split("[", 1)[0].strip().rsplit(".", 1)[-1] == name
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, kind)


def check_childspecs(specs: Iterable[ChildSpec | Mapping[str, Any]]) -> list[ChildSpec]:
    """Check child specs as a supervisor would (OTP's check_childspecs); return them built.

    Each is a ChildSpec or a mapping with a config file's child keys. Every problem is
    found, not only the first: the ConfigError lists each as ``[index].field: problem``.
    """
    reader = _Reader(None)
    built: list[ChildSpec] = []
    problems: list[str] = []
    ids: dict[str, int] = {}
    names: dict[str, int] = {}
    for index, spec in enumerate(specs):
        where = f"[{index}]"
        try:
            child = spec if isinstance(spec, ChildSpec) else reader.child(spec, where)
        except ConfigError as error:
            problems.append(str(error))
            continue
        if child.id in ids:
            problems.append(f"{where}.id: {child.id!r} is also the id of [{ids[child.id]}]")
        ids.setdefault(child.id, index)
        if child.name is not None:
            if child.name in names:
                problems.append(
                    f"{where}.name: {child.name!r} is also the name of [{names[child.name]}]"
                )
            names.setdefault(child.name, index)
        built.append(child)
    if problems:
        raise ConfigError("", f"{len(problems)} bad child spec(s): " + "; ".join(problems))
    return built


def _kind(target: object, returns: str = "pykka.ActorRef") -> str:
    if isinstance(target, type):
        return f"a class that is not a pykka Actor ({target.__qualname__})"
    if callable(target):
        return f"a callable not annotated to return {returns}"
    return f"a {type(target).__name__}, not a callable"


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
