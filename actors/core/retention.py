"""Which finished tasks the store keeps: those the program still holds, and the newest others.

A finished task is kept while the program holds the :class:`TaskId` that registration
returned for it (or a handle holding that id); the others are kept among the newest
``keep_finished`` that finished or were let go. A held id is watched by a weak
reference, so holding costs the program nothing but the id itself.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterator

__all__ = ["Hold", "Retention", "TaskId", "forgotten_message"]


class TaskId(str):
    """A task's id as registration returns it: it compares, hashes, prints and pickles as
    the plain id, and while the program holds it the task is not forgotten."""

    __slots__ = ("__weakref__",)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)  # a copy elsewhere (a pickle, a process) is a plain id

    def __repr__(self) -> str:
        return repr(str(self))


class Hold(weakref.ref[TaskId]):
    """The store's weak reference to the TaskId the program holds for one task."""

    __slots__ = ("seq", "task_id")

    task_id: str
    seq: int


class Retention:
    """The store's bookkeeping of finished tasks nobody holds (used under its lock).

    The one exception to the lock is a held id's end: CPython runs the weak reference's
    callback wherever the last reference goes (any thread, even one holding the store's
    lock), so the callback only appends to a deque, which ``excess`` reads.
    """

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self._window: deque[tuple[str, int]] = deque()  # (id, seq) not held, oldest first
        self._let_go: deque[Hold] = deque()  # held ids that died, from any thread
        self.forgotten = 0  # pruned (not ``forget``): the count get_metrics shows

    def hold(self, task_id: str, seq: int) -> tuple[TaskId, Hold | None]:
        """A new TaskId for the task, and the store's watch on it (None if nothing is
        ever forgotten: keep_finished=None)."""
        held = TaskId(task_id)
        if self.keep is None:
            return held, None
        hold = Hold(held, self._let_go.append)
        hold.task_id = task_id
        hold.seq = seq
        return held, hold

    def finished(self, task_id: str, seq: int, hold: Hold | None) -> bool:
        """A task finished: True if nobody holds it (it joins the window; the caller
        drops its hold); False while its id is held (its end's callback adds it later)."""
        if self.keep is None:
            return False
        if hold is not None and hold() is not None:
            return False
        self._window.append((task_id, seq))
        return True

    def released(self) -> Iterator[Hold]:
        """The holds that died since the last call (the caller adds those that are still
        their finished task's current hold with ``add``)."""
        let_go = self._let_go
        while let_go:
            yield let_go.popleft()

    def add(self, task_id: str, seq: int) -> None:
        """A finished task nobody holds joins the window (read back from a journal, or
        its id let go after it finished)."""
        if self.keep is not None:
            self._window.append((task_id, seq))

    def excess(self) -> Iterator[tuple[str, int]]:
        """The oldest (id, seq) past ``keep``, removed from the window as they are given."""
        keep = self.keep
        window = self._window
        if keep is None:
            return
        while len(window) > keep:
            yield window.popleft()

    @property
    def backlog(self) -> int:
        """How many held ids died since ``released`` was last read."""
        return len(self._let_go)


def forgotten_message(task_id: str, keep: int | None) -> str:
    """What TaskNotFoundError says: why an id may be unknown, and what to do."""
    if keep is None:
        return f"no task with id {task_id!r}: never registered here, or forgotten by forget()"
    return (
        f"no task with id {task_id!r}: never registered here, or forgotten: by forget(), "
        f"or it finished while the program held neither the id registration returned nor "
        f"a handle to it, and more than keep_finished={keep} other finished tasks came "
        f"after it (hold the returned id or handle, or raise keep_finished)"
    )
