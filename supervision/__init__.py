"""Supervision trees for pykka actors: supervisors, child specs, restarts, backoff, timers.

Works for any pykka actor: a plain ``pykka.ThreadingActor`` subclass is supervisable as it
is. This package never imports ``actors``.
"""

from __future__ import annotations

from supervision._errors import ChildFailureEscalated, ChildStartError, RestartIntensityExceeded
from supervision._links import Exited, link, unlink
from supervision._monitor import ExitReason, Terminated, Watch, watch
from supervision._names import NamedRef, RestartBufferFull, named, whereis
from supervision._spec import (
    AutoShutdown,
    Backoff,
    ChildInfo,
    ChildSpec,
    Decider,
    Directive,
    Restart,
    Shutdown,
    Strategy,
    SupervisorSpec,
)
from supervision._supervisor import Supervisor
from supervision._timer import (
    Cancellable,
    Timer,
    TimerHandle,
    TimerService,
    send_after,
    timer_service,
)
from supervision.config import ConfigError, check_childspecs, tree_from_config

__all__ = [
    "AutoShutdown",
    "Backoff",
    "Cancellable",
    "ChildFailureEscalated",
    "ChildInfo",
    "ChildSpec",
    "ChildStartError",
    "ConfigError",
    "Decider",
    "Directive",
    "ExitReason",
    "Exited",
    "NamedRef",
    "Restart",
    "RestartBufferFull",
    "RestartIntensityExceeded",
    "Shutdown",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
    "Terminated",
    "Timer",
    "TimerHandle",
    "TimerService",
    "Watch",
    "check_childspecs",
    "link",
    "named",
    "send_after",
    "timer_service",
    "tree_from_config",
    "unlink",
    "watch",
    "whereis",
]
