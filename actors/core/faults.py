"""Fault injection for the reliability tests: named points in a system's actors that can be armed.

Each ActorSystem has its own (``system.faults``): arming one system's points never
touches another's.

Disarmed (always, outside tests) a point costs one truthiness check of an empty dict.
"""

from __future__ import annotations

import threading

__all__ = ["FaultPoints", "InjectedFaultError"]


class InjectedFaultError(RuntimeError):
    """Raised at an armed fault point."""


class FaultPoints:
    """Points by name: ``arm(point, times)`` makes the next ``times`` hits raise."""

    def __init__(self) -> None:
        self._armed: dict[str, int] = {}
        self.armed = False
        """Whether any point is armed (hot paths read this before calling ``hit``)."""
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()

    def arm(self, point: str, times: int = 1) -> None:
        with self._lock:
            self._armed[point] = self._armed.get(point, 0) + times
            self.armed = True

    def hits(self, point: str) -> int:
        """How many times an armed ``point`` has raised."""
        with self._lock:
            return self._hits.get(point, 0)

    def reset(self) -> None:
        with self._lock:
            self._armed.clear()
            self._hits.clear()
            self.armed = False

    def hit(self, point: str) -> None:
        if not self._armed:
            return
        with self._lock:
            left = self._armed.get(point, 0)
            if not left:
                return
            if left == 1:
                del self._armed[point]
                self.armed = bool(self._armed)
            else:
                self._armed[point] = left - 1
            self._hits[point] = self._hits.get(point, 0) + 1
        raise InjectedFaultError(f"fault injected at {point}")
