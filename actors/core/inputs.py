"""Results along dependencies: a task's argument that stands for another task's result.

A handle given as an argument is registered as :class:`ResultOf` (its task becomes a
dependency), and each attempt gets the dependency's result in its place. The marker, not
the value, is what the journal keeps and what a restart reads back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KEEP", "ResultOf", "find", "resolve"]

KEEP: Any = object()
"""What a swap function returns for a value it leaves as it is."""


@dataclass(frozen=True, slots=True)
class ResultOf:
    """In a task's arguments: the result of task ``task_id``, one of its dependencies."""

    task_id: str


def _replace(value: Any, swap: Callable[[Any], Any], found: list[str]) -> Any:
    """``value`` with what ``swap`` recognises swapped (at the top, and inside lists,
    tuples and dicts, as Dask does); the same object when nothing was."""
    kind = type(value)
    if kind is list or kind is tuple:
        items = [_replace(item, swap, found) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if kind is list else tuple(items)
    if kind is dict:
        pairs = {k: _replace(v, swap, found) for k, v in value.items()}
        if all(pairs[k] is v for k, v in value.items()):
            return value
        return pairs
    swapped = swap(value)
    if swapped is KEEP:
        return value
    if isinstance(swapped, ResultOf):
        found.append(swapped.task_id)
    return swapped


def _holds(value: Any, kind: type) -> bool:
    """Whether ``value`` is a ``kind``, or holds one where ``_replace`` looks."""
    seen = type(value)
    if seen is kind:
        return True
    if seen is list or seen is tuple:
        return any(_holds(item, kind) for item in value)
    if seen is dict:
        return _in_values(value, kind)
    return False


def _in_values(mapping: Mapping[str, Any], kind: type) -> bool:
    """Whether a value of ``mapping`` is or holds a ``kind`` (no copy of the mapping)."""
    return any(_holds(item, kind) for item in mapping.values())


def find(
    args: Any, kwargs: Any, kind: type, to_marker: Callable[[Any], Any]
) -> tuple[Any, Any, list[str]] | None:
    """``args`` and ``kwargs`` with each ``kind`` in them replaced by ``to_marker``'s
    ResultOf, and the ids found (in order); None if there is none (nothing copied).
    Arguments of the wrong shape are left as they are, for registration to refuse."""
    if not args and not kwargs:  # most tasks: nothing to look into
        return None
    in_args = _holds(args, kind) if type(args) is tuple or type(args) is list else False
    in_kwargs = isinstance(kwargs, Mapping) and _in_values(kwargs, kind)
    if not in_args and not in_kwargs:
        return None
    found: list[str] = []
    if in_args:
        args = _replace(args, to_marker, found)
    if in_kwargs:
        kwargs = _replace(dict(kwargs), to_marker, found)
    return args, kwargs, found


def resolve(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], result_of: Callable[[str], Any]
) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    """``args`` and ``kwargs`` with each ResultOf replaced by ``result_of(task_id)``;
    the same objects when they hold none (checked without copying)."""
    in_args = _holds(args, ResultOf)
    in_kwargs = bool(kwargs) and _in_values(kwargs, ResultOf)
    if not in_args and not in_kwargs:
        return args, kwargs

    def swap(value: Any) -> Any:
        return result_of(value.task_id) if type(value) is ResultOf else KEEP

    found: list[str] = []
    if in_args:
        args = _replace(args, swap, found)
    if in_kwargs:
        kwargs = _replace(dict(kwargs), swap, found)
    return args, kwargs
