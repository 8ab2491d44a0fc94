"""Flow control: per-key concurrency and rate limits, and the system's resources.

:class:`LimitTable` is configuration (``TaskManager.limit``), written by any thread and
read by the scheduler. :class:`Gate` is the scheduler actor's own state: the ready tasks
of each limit key, held back while their key (or the resources they ask for) has no room,
so that they hold no slot and block no other key. Unkeyed tasks never meet the gate.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.core.attempt import Attempt
from actors.core.task import Task
from supervision._validate import check_int, check_number, check_text, show

__all__ = ["DEFAULT_KEY", "Gate", "Group", "Limit", "LimitTable", "check_resources", "parse_rate"]

DEFAULT_KEY = "*"
"""``limit("*", ...)``: the limits of every key without limits of its own."""

_ONE = 1.0 - 1e-9  # a token, less what float arithmetic loses (0.1 s at 10/s is 0.99999...)

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}


def parse_rate(name: str, value: object) -> float:
    """Starts per second, from a number (per second) or a string such as ``"10/s"``,
    ``"600/m"`` or ``"100/h"``; TypeError or ValueError naming ``name`` else."""
    if isinstance(value, str):
        match = _RATE.match(value)
        if match is None:
            raise ValueError(
                f'{name} must be a number per second or a string such as "10/s", "600/m" '
                f'or "100/h", got {show(value)}'
            )
        value = float(match.group(1)) / _PER[match.group(2)]
        if value <= 0:
            raise ValueError(f"{name} must be above 0, got {show(match.group(0))}")
        return value
    return check_number(name, value, above_minimum=True, maximum=1e12)


def check_resources(name: str, value: object, *, minimum: int) -> dict[str, int]:
    """A mapping of resource names to whole units (>= ``minimum``), checked."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of resource names to units, got {show(value)}")
    checked: dict[str, int] = {}
    for key, units in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings, got {show(key)}")
        check_text(f"{name} keys", key, allow_empty=False, storable=True)
        checked[key] = check_int(f"{name}[{key!r}]", units, minimum=minimum)
    return checked


@dataclass(frozen=True, slots=True)
class Limit:
    """The limits of one key: attempts running at once, starts per second (a token
    bucket of ``burst`` tokens); None: no bound."""

    concurrency: int | None = None
    rate: float | None = None
    burst: int = 1

    @classmethod
    def checked(cls, concurrency: object, rate: object, burst: object) -> Limit:
        if concurrency is not None:
            check_int("concurrency", concurrency, minimum=0)
        per_second = None if rate is None else parse_rate("rate", rate)
        check_int("burst", burst, minimum=1)
        return cls(concurrency, per_second, burst)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "rate": self.rate, "burst": self.burst}


class LimitTable:
    """The limits set per key (configuration: not journaled). Written by any thread
    under its lock; read by the scheduler without it (one dict read)."""

    def __init__(self, resources: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self.limits: dict[str, Limit] = {}
        self.default: Limit | None = None
        self.resources: dict[str, int] = dict(resources or {})
        self.gate: Gate | None = None
        """The running scheduler's gate (for metrics); None before it starts."""
        self.version = 0
        """Counts changes: the gate keeps each key's limit until it changes."""

    def set(self, key: str, limit: Limit | None) -> None:
        with self._lock:
            self.version += 1  # (first: a reader between the two sees a stale version)
            if key == DEFAULT_KEY:
                self.default = limit
            elif limit is None:
                self.limits.pop(key, None)
            else:
                self.limits = {**self.limits, key: limit}  # readers see one dict or the other

    def of(self, key: str) -> Limit | None:
        limit = self.limits.get(key)
        return self.default if limit is None else limit

    def check_task(self, task: Task) -> None:
        """ValueError if the task asks for a resource the system lacks, or for more of
        one than exists (it could never start)."""
        for name, units in task.resources.items():
            have = self.resources.get(name)
            if have is None or units > have:
                raise ValueError(
                    f"resources asks for {name}={units}, but the system has "
                    f"{'no ' + repr(name) if have is None else f'{name}={have}'} (it could "
                    "never start; give the TaskManager or ActorSystem resources=...)"
                )


class Group:
    """One limit key's ready tasks (or the unkeyed tasks asking for the same resources)."""

    __slots__ = (
        "heap",
        "key",
        "limit",
        "name",
        "number",
        "parked",
        "pos",
        "running",
        "stamp",
        "tokens",
        "version",
    )

    def __init__(self, name: object, key: str | None) -> None:
        self.name = name  # its place in Gate.groups
        self.key = key
        self.heap: list[tuple[tuple[int, int, str], str, Mapping[str, int]]] = []
        self.running = 0
        self.tokens = 0.0
        self.stamp = -math.inf  # a bucket never used is full
        self.parked = False
        self.pos = -1
        self.number = 0  # its current representative's
        self.limit: Limit | None = None
        self.version = -1  # the table's version ``limit`` was read at


Item = tuple[int, int, str]
Rep = tuple[int, int, str, int]


class Gate:
    """Holds back the ready tasks of keys (and resources) that have no room; the scheduler
    actor's own, touched by it only.

    A group with ready tasks and room has one *representative* in its head's executor
    heap: ``(priority, turn, task_id, number)``, a 4-tuple among the 3-tuples of unkeyed
    tasks. A group that just started a task goes to the back of the line, so that keys of
    equal priority take turns. A group without room has no representative (it is parked)
    until an attempt of its key ends, resources are freed, its tokens are due or the
    limits change.
    """

    def __init__(
        self,
        table: LimitTable,
        heaps: dict[str, list[Any]],
        clock: Callable[[], float],
        arm: Callable[[float], None],
    ) -> None:
        self.table = table
        self._heaps = heaps  # ReadyQueues.heaps
        self._clock = clock
        self._arm = arm  # arm(delay): post a recheck to the scheduler after delay seconds
        self.groups: dict[object, Group] = {}
        self.reps: dict[int, Group] = {}
        self.held: dict[Attempt, Group] = {}
        self.free: dict[str, int] = dict(table.resources)
        self._numbers = 0
        self._back = -1  # the latest turn given (or registration seen)
        self._due: float = math.inf  # the earliest recheck armed

    # -- queueing -------------------------------------------------------------------------

    def add(self, task: Task, executor: str, item: Item) -> None:
        """A ready task of a key (or asking for resources) joins its group."""
        key: object = task.limit_key
        if key is None:
            key = tuple(sorted(task.resources))  # unkeyed: grouped by what it asks for
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, task.limit_key)
        if item[1] > self._back:
            self._back = item[1]
        heap = group.heap
        head = heap[0][0] if heap else None
        heapq.heappush(heap, (item, executor, task.resources))
        if not group.parked and (head is None or item < head):
            self._represent(group, item[1] if head is None else group.pos)

    def _represent(self, group: Group, pos: int) -> None:
        """Put the group's head (anew) in its executor's heap, at turn ``pos``."""
        item, executor, _ = group.heap[0]
        self._numbers += 1
        number = self._numbers
        group.pos = pos
        self.reps.pop(group.number, None)  # the one before is stale
        group.number = number
        self.reps[number] = group
        heapq.heappush(self._heaps.setdefault(executor, []), (item[0], pos, item[2], number))

    def _limit(self, group: Group) -> Limit | None:
        table = self.table
        if group.version != table.version:
            group.version = table.version
            group.limit = None if group.key is None else table.of(group.key)
        return group.limit

    # -- deciding -----------------------------------------------------------------------------

    def admit(self, rep: Rep, executor: str) -> tuple[Group, Item] | None:
        """The group's head to start now, or None (a stale representative, or its group
        has no room: parked)."""
        group = self.reps.pop(rep[3], None)
        if group is None:
            return None  # stale: its group has a newer representative
        group.number = 0
        head, _, resources = group.heap[0]  # (the current representative is the head's)
        limit = group.limit if group.version == self.table.version else self._limit(group)
        if limit is not None:
            if limit.concurrency is not None and group.running >= limit.concurrency:
                group.parked = True  # an attempt's end or a change of limits wakes it
                return None
            if limit.rate is not None:
                now = self._clock()
                tokens = min(limit.burst, group.tokens + (now - group.stamp) * limit.rate)
                group.tokens, group.stamp = tokens, now
                if tokens < _ONE:
                    group.parked = True
                    self._recheck_at(now + (1.0 - tokens) / limit.rate, now)
                    return None
        if resources:
            free = self.free
            if any(free[name] < units for name, units in resources.items()):
                group.parked = True  # freed resources wake it
                return None
        return group, head

    def _recheck_at(self, due: float, now: float) -> None:
        if due < self._due:
            self._due = due
            self._arm(max(0.0, due - now))

    def started(self, group: Group, attempt: Attempt) -> None:
        """The head began ``attempt``: count it, and the group goes to the back of the line."""
        _, _, resources = heapq.heappop(group.heap)
        group.running += 1
        self.held[attempt] = group
        limit = group.limit  # (read by admit just before)
        if limit is not None and limit.rate is not None:
            group.tokens -= 1.0
        for name, units in resources.items():
            self.free[name] -= units
        if group.heap:
            self._back += 1
            self._represent(group, max(group.heap[0][0][1], self._back))

    def skipped(self, group: Group) -> None:
        """The head could not begin (cancelled while it waited): the next one's turn."""
        heapq.heappop(group.heap)
        if group.heap:
            self._represent(group, group.pos)
        else:
            self._drop_if_idle(group)

    def undo(self, group: Group, attempt: Attempt, executor: str, item: Item) -> None:
        """The attempt could not be handed over: the task is back at its group's head."""
        # Back in the heap first: with an empty heap, finished() would forget the group.
        heapq.heappush(group.heap, (item, executor, attempt.task.resources))
        self.finished(attempt)
        if not group.parked:
            self._represent(group, group.pos)

    def finished(self, attempt: Attempt) -> None:
        """The attempt's work returned: its key and resources have room again."""
        group = self.held.pop(attempt, None)
        if group is None:
            return
        group.running -= 1
        resources = attempt.task.resources
        if resources:
            for name, units in resources.items():
                self.free[name] += units
            self.wake(lambda g: g is group or bool(g.heap and g.heap[0][2]))
        elif group.parked:
            self._unpark(group)
        elif not group.heap:
            self._drop_if_idle(group)

    def wake(self, which: Callable[[Group], bool] | None = None) -> None:
        """Look again at parked groups (all, or ``which``)."""
        for group in list(self.groups.values()):
            if group.parked and (which is None or which(group)):
                self._unpark(group)

    def due(self) -> None:
        """A recheck armed for tokens came due, or the limits changed: look at every
        parked group again (those still without room park again)."""
        self._due = math.inf
        self.wake()

    def _unpark(self, group: Group) -> None:
        group.parked = False
        if group.heap:
            self._represent(group, group.pos)

    def _drop_if_idle(self, group: Group) -> None:
        """Forget an empty group whose key has no attempt running and a full bucket."""
        if group.running or group.heap or group.parked:
            return
        limit = self._limit(group)
        if limit is not None and limit.rate is not None:
            tokens = group.tokens + (self._clock() - group.stamp) * limit.rate
            if tokens < limit.burst:
                return
        self.reps.pop(group.number, None)
        self.groups.pop(group.name, None)

    def reset(self, held: Iterable[Attempt]) -> None:
        """Count the attempts a restarted scheduler finds holding slots."""
        for attempt in held:
            task = attempt.task
            if task.limit_key is None and not task.resources:
                continue
            key: object = task.limit_key
            if key is None:
                key = tuple(sorted(task.resources))
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(key, task.limit_key)
            group.running += 1
            self.held[attempt] = group
            for name, units in task.resources.items():
                self.free[name] = self.free.get(name, 0) - units

    # -- reading (any thread: a copy, for metrics) --------------------------------------------

    def report(self) -> dict[str, dict[str, Any]]:
        """Per key: attempts running, tasks waiting, tokens left (None without a rate)."""
        now = self._clock()
        shown: dict[str, dict[str, Any]] = {}
        for group in list(dict(self.groups).values()):
            if group.key is None:
                continue
            limit = self.table.of(group.key)
            tokens = None
            if limit is not None and limit.rate is not None:
                tokens = min(limit.burst, group.tokens + (now - group.stamp) * limit.rate)
            shown[group.key] = {
                "running": group.running,
                "waiting": len(group.heap),
                "tokens": tokens,
            }
        return shown
