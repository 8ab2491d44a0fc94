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


def find(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], to_marker: Callable[[Any], Any]
) -> tuple[tuple[Any, ...], dict[str, Any], list[str]] | None:
    """``args`` and ``kwargs`` with every value ``to_marker`` turns into a ResultOf
    replaced (it returns KEEP for the others), and the ids found (in order); None if
    there is none (no copy made)."""
    found: list[str] = []
    new_args = _replace(args, to_marker, found)
    new_kwargs = _replace(dict(kwargs), to_marker, found) if kwargs else {}
    if not found:
        return None
    return new_args, new_kwargs, found


def resolve(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], result_of: Callable[[str], Any]
) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    """``args`` and ``kwargs`` with each ResultOf replaced by ``result_of(task_id)``."""

    def swap(value: Any) -> Any:
        return result_of(value.task_id) if type(value) is ResultOf else KEEP

    found: list[str] = []
    new_args = _replace(args, swap, found)
    new_kwargs = _replace(dict(kwargs), swap, found) if kwargs else kwargs
    return new_args, new_kwargs
