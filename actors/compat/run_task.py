"""The jobs of the old run_task scripts, as helpers on the unified TaskManager.

Each call warns DeprecationWarning; the replacements are in docs/guides/migration.md.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.compat._deprecation import warn_deprecated
from actors.errors import TaskError
from actors.manager import TaskManager
from supervision._validate import check_seconds

__all__ = ["FocusRun", "PeriodicRun", "process_focus", "schedule_periodic"]


@dataclass(slots=True)
class FocusRun:
    """What one run over a focus point gave."""

    focus_id: str
    results: dict[str, Any] = field(default_factory=dict)
    """Site -> what processing it returned, for the sites that succeeded."""
    errors: dict[str, TaskError] = field(default_factory=dict)
    """Site -> the TaskError it ended with, for the others."""
    insights: Any = None
    insights_error: TaskError | None = None


def process_focus(
    manager: TaskManager,
    focus_id: str,
    sites: Sequence[str],
    process_site: Callable[[str, str], Any],
    generate_insights: Callable[[str, dict[str, Any]], Any],
    *,
    max_retries: int = 2,
    retry_delay: float = 1.0,
    timeout: float | None = None,
) -> Coroutine[Any, Any, FocusRun]:
    """Process every site of a focus point, then generate insights from the successes.

    ``run = await process_focus(tm, focus_id, sites, process_site, generate_insights)``.
    ``process_site(focus_id, site)`` runs as one task per site (with retries and a
    timeout); ``generate_insights(focus_id, {site: result})`` runs once every site task has
    ended, with the results of those that succeeded. Either may be a coroutine function.
    """
    # A plain function returning the coroutine, not an ``async def``: the warning comes at
    # the call and names the caller's line, even when the coroutine is run as a Task.
    warn_deprecated(
        "actors.compat.run_task.process_focus",
        'TaskManager.register_task(..., tags=[f"focus:{focus_id}"]) and execute_task',
    )
    return _process_focus(
        manager,
        focus_id,
        sites,
        process_site,
        generate_insights,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
    )


async def _process_focus(
    manager: TaskManager,
    focus_id: str,
    sites: Sequence[str],
    process_site: Callable[[str, str], Any],
    generate_insights: Callable[[str, dict[str, Any]], Any],
    *,
    max_retries: int,
    retry_delay: float,
    timeout: float | None,
) -> FocusRun:
    run = FocusRun(focus_id)
    ids = {
        site: manager.register_task(
            f"process {focus_id} {site}",
            process_site,
            focus_id,
            site,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            tags=[f"focus:{focus_id}"],
        )
        for site in sites
    }
    outcomes = await asyncio.gather(
        *(manager.execute_task(task_id) for task_id in ids.values()), return_exceptions=True
    )
    for site, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, TaskError):
            run.errors[site] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            run.results[site] = outcome
    insights = manager.register_task(
        f"insights {focus_id}",
        generate_insights,
        focus_id,
        dict(run.results),
        tags=[f"focus:{focus_id}"],
    )
    try:
        run.insights = await manager.execute_task(insights)
    except TaskError as error:
        run.insights_error = error
    return run


KEEP_RUN_IDS = 100
MAX_INSTANCES = 1_000_000  # the old runs never waited for each other


class PeriodicRun:
    """A job registered as a task every ``interval`` seconds until ``cancel()``: a
    schedule of its manager (``TaskManager.schedule``), whose runs go on while one is
    unfinished and a late run still runs once.

    Made by :func:`schedule_periodic`; ``.manager`` is the TaskManager the runs go to.
    """

    def __init__(
        self,
        manager: TaskManager,
        name: str,
        interval: float,
        job: Callable[[], Any],
        schedule_id: str,
    ) -> None:
        self._manager = manager
        self.name = name
        self.interval = interval
        self.job = job
        self.schedule_id = schedule_id
        """The schedule's id (``manager.schedules()`` lists it until ``cancel()``)."""
        self._lock = threading.Lock()
        self._final_runs: int | None = None

    @property
    def manager(self) -> TaskManager:
        """The unified TaskManager each run is registered on (read-only)."""
        return self._manager

    @property
    def runs(self) -> int:
        """How many runs were registered."""
        with self._lock:
            if self._final_runs is not None:
                return self._final_runs
        for schedule in self._manager.schedules():
            if schedule.schedule_id == self.schedule_id:
                return schedule.fired
        return 0

    @property
    def task_ids(self) -> deque[str]:
        """The ids of the latest runs the manager still keeps (at most KEEP_RUN_IDS: a job
        that runs for months must not grow memory); ``runs`` counts them all."""
        mine = [
            task
            for task in self._manager.get_all_tasks()
            if task.metadata.get("schedule") == self.schedule_id
        ]
        mine.sort(key=lambda task: task.created_at)
        return deque((task.task_id for task in mine), maxlen=KEEP_RUN_IDS)

    def cancel(self) -> None:
        """Register no more runs (a run already registered goes on)."""
        runs = self.runs
        with self._lock:
            if self._final_runs is not None:
                return
            self._final_runs = runs
        self._manager.unschedule(self.schedule_id)


def schedule_periodic(
    manager: TaskManager,
    name: str,
    interval: float,
    job: Callable[[], Any],
    *,
    first_in: float = 0.0,
) -> PeriodicRun:
    """Register ``job`` as a task now (or after ``first_in`` s) and every ``interval`` s.

    Raises:
        ValueError: ``interval`` is not a finite number > 0 and <= threading.TIMEOUT_MAX,
            or ``first_in`` not one >= 0 (a longer wait would kill the shared timer thread).
        TypeError: either is not a number, or ``job`` is not callable.
    """
    warn_deprecated(
        "actors.compat.run_task.schedule_periodic",
        'TaskManager.schedule(name, job, every=interval, misfire="run_once")',
    )
    interval = check_seconds("interval", interval, allow_zero=False)
    first_in = check_seconds("first_in", first_in)
    if not callable(job):
        raise TypeError(f"job must be callable, got {job!r}")
    schedule_id = manager.schedule(
        name,
        job,
        every=interval,
        start=datetime.now(UTC) + timedelta(seconds=first_in),
        misfire="run_once",
        max_instances=MAX_INSTANCES,
    )
    return PeriodicRun(manager, name, interval, job, schedule_id)
