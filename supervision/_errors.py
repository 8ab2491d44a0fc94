"""The errors a supervision tree raises."""

from __future__ import annotations

__all__ = ["ChildFailureEscalated", "ChildStartError", "RestartIntensityExceeded"]


class RestartIntensityExceeded(Exception):  # noqa: N818 - the name is OTP's and the design's
    """A supervisor saw more than ``max_restarts`` restarts within ``within_seconds``.

    The supervisor has stopped all its children and fails with this error, so that its
    own parent applies its strategy to it (escalation).
    """

    def __init__(self, supervisor: str, max_restarts: int, within_seconds: float) -> None:
        super().__init__(supervisor, max_restarts, within_seconds)
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds

    def __str__(self) -> str:
        return (
            f"supervisor {self.supervisor} exceeded its restart intensity: more than "
            f"{self.max_restarts} restarts within {self.within_seconds} seconds"
        )


class ChildStartError(Exception):
    """A child failed to start (its constructor or on_start raised, or it never started)."""

    def __init__(self, child_id: str, error: BaseException) -> None:
        super().__init__(child_id, error)
        self.child_id = child_id
        self.error = error

    def __str__(self) -> str:
        return f"child {self.child_id!r} failed to start: {self.error!r}"


class ChildFailureEscalated(RestartIntensityExceeded):
    """A child's decider said ESCALATE: the supervisor stopped its children and fails.

    A kind of giving up, so that ``on_escalate`` and a parent treat it as they treat an
    exceeded restart intensity; ``child_id`` and ``error`` say which failure it was.
    """

    def __init__(
        self,
        supervisor: str,
        max_restarts: int,
        within_seconds: float,
        child_id: str,
        error: BaseException | None,
    ) -> None:
        super().__init__(supervisor, max_restarts, within_seconds)
        self.child_id = child_id
        self.error = error

    def __reduce__(self) -> tuple[object, ...]:
        args = (self.supervisor, self.max_restarts, self.within_seconds, self.child_id, self.error)
        return (type(self), args)

    def __str__(self) -> str:
        return (
            f"supervisor {self.supervisor} escalated the failure of child "
            f"{self.child_id!r}: {self.error!r}"
        )
