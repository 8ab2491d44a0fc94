"""The scheduler actor's message protocol (defined in :mod:`actors.core.messages`)."""

from __future__ import annotations

from actors.core.messages import (
    CancelTask,
    FailureKind,
    GetStatus,
    GetTask,
    Pause,
    Start,
    SubmitTask,
    Subscribe,
    TaskEvent,
    TaskFailed,
    TaskProgress,
    TaskRetrying,
    TaskStarted,
    TaskSucceeded,
    Unsubscribe,
)

__all__ = [
    "CancelTask",
    "FailureKind",
    "GetStatus",
    "GetTask",
    "Pause",
    "Start",
    "SubmitTask",
    "Subscribe",
    "TaskEvent",
    "TaskFailed",
    "TaskProgress",
    "TaskRetrying",
    "TaskStarted",
    "TaskSucceeded",
    "Unsubscribe",
]
