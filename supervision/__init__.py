"""Supervision trees for pykka actors: supervisors, child specs, restarts, backoff, timers.

Works for any pykka actor: a plain ``pykka.ThreadingActor`` subclass is supervisable as it
is. This package never imports ``actors``.
"""

from __future__ import annotations

from supervision._errors import ChildStartError, RestartIntensityExceeded
from supervision._monitor import ExitReason, Terminated, Watch, watch
from supervision._spec import Backoff, ChildInfo, ChildSpec, Restart, Strategy, SupervisorSpec
from supervision._supervisor import Supervisor
from supervision._timer import (
    Cancellable,
    Timer,
    TimerHandle,
    TimerService,
    send_after,
    timer_service,
)
from supervision.config import ConfigError, tree_from_config

__all__ = [
    "Backoff",
    "Cancellable",
    "ChildInfo",
    "ChildSpec",
    "ChildStartError",
    "ConfigError",
    "ExitReason",
    "Restart",
    "RestartIntensityExceeded",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
    "Terminated",
    "Timer",
    "TimerHandle",
    "TimerService",
    "Watch",
    "send_after",
    "timer_service",
    "tree_from_config",
    "watch",
]
