"""The lifecycle of a system and of a manager: explicit states, and the guard that names them."""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(enum.Enum):
    """Where an ActorSystem or a TaskManager is in its life.

    NEW -> RUNNING -> STOPPING -> STOPPED, and FAILED when a system's supervision tree
    gave up (its unfinished tasks ended FAILED). Only NEW and RUNNING accept tasks.
    """

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def accepts_tasks(self) -> bool:
        return self is State.NEW or self is State.RUNNING
