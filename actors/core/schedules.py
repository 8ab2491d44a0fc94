"""Schedules: a task registered every N seconds or on a cron expression, kept in the journal.

``Schedules`` owns every schedule (its lock guards them; registering a firing takes the
store's lock inside it, never the other way). Its delays are the timer service's; each
firing registers an ordinary task, so every feature of tasks applies.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from actors.core.messages import SubmitTask
from actors.core.registration import func_name
from actors.core.store import TaskStore
from actors.core.task import TERMINAL
from actors.runtime.hosted import uuid4_text
from supervision import TimerHandle, TimerService
from supervision._log import get_logger
from supervision._validate import MAX_SECONDS, check_int, check_text, show

__all__ = [
    "MISFIRE",
    "MISFIRE_GRACE",
    "ScheduleInfo",
    "Schedules",
    "Trigger",
    "check_timing",
    "cron_trigger",
]

_log = get_logger("actors")

MISFIRE = ("skip", "run_once", "run_all")
"""What a schedule does with runs it missed (the process was down, or the timer late
past MISFIRE_GRACE): "skip" them, "run_once" for all of them, or "run_all" of them (at
most MAX_CATCH_UP)."""

MISFIRE_GRACE = 1.0
"""Seconds a run may start late and still count as on time (not a misfire)."""

MAX_CATCH_UP = 1000
"""The most missed runs one wake-up registers under "run_all"; the rest are skipped."""


class Trigger:
    """When a schedule fires: every ``every`` seconds from ``start`` (else ``anchor``), or on a cron
    expression in a time zone; never before ``start`` nor after ``end`` (timestamps)."""

    def __init__(
        self,
        *,
        every: float | None,
        cron: str | None,
        zone: tzinfo,
        anchor: float,
        start: float | None,
        end: float | None,
    ) -> None:
        self.every = every
        self.cron = cron
        self.zone = zone
        self.anchor = anchor if start is None else start  # the first run at start
        self.start = start
        self.end = end

    def next_after(self, moment: float) -> float | None:
        """The first fire time strictly after ``moment`` (a timestamp); None past ``end``."""
        if self.start is not None and moment < self.start:
            moment = math.nextafter(self.start, -math.inf)  # (start itself may fire)
        if self.every is not None:
            anchor = self.anchor
            if moment < anchor:
                found = anchor
            else:
                found = anchor + (math.floor((moment - anchor) / self.every) + 1) * self.every
                if found <= moment:  # (floating point)
                    found += self.every
        else:
            assert self.cron is not None
            found = _next_cron(self.cron, self.zone, moment)
        if self.end is not None and found > self.end:
            return None
        return found


def _next_cron(expression: str, zone: tzinfo, moment: float) -> float:
    from cronsim import CronSim  # imported on first use: `import actors` stays light

    after = datetime.fromtimestamp(math.floor(moment), zone)
    for found in CronSim(expression, after):
        if found.timestamp() > moment:
            return found.timestamp()
    raise ValueError(f"cron expression {expression!r} never fires")  # pragma: no cover


def cron_trigger(expression: object, timezone: object) -> tuple[str, tzinfo, str]:
    """``(expression, zone, zone name)`` checked: ValueError naming a bad expression or
    time zone (cronsim parses the expression, zoneinfo finds the zone)."""
    check_text("cron", expression, allow_empty=False, storable=True)
    assert isinstance(expression, str)
    zone, name = zone_of(timezone)
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:  # pragma: no cover - an install_requires dependency
        raise ImportError("cron schedules need cronsim: pip install cronsim") from None
    try:
        CronSim(expression, datetime.now(zone))
    except (CronSimError, ValueError) as error:
        raise ValueError(f"cron expression {expression!r} is not valid: {error}") from None
    return expression, zone, name


def zone_of(timezone: object) -> tuple[tzinfo, str]:
    """A time zone given by IANA name ("Europe/Berlin") or as a ZoneInfo; None is UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if timezone is None:
        return UTC, "UTC"
    if isinstance(timezone, ZoneInfo):
        return timezone, timezone.key
    if timezone is UTC:
        return UTC, "UTC"
    if not isinstance(timezone, str):
        raise TypeError(
            f"timezone must be an IANA name (such as 'Europe/Berlin') or a ZoneInfo, "
            f"got {show(timezone)}"
        )
    try:
        return ZoneInfo(timezone), timezone
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"timezone {timezone!r} is not a known time zone ({error})") from None


def check_timing(
    every: float | None,
    cron: str | None,
    timezone: object,
    start: float | None,
    end: float | None,
    misfire: object,
    max_instances: object,
) -> tuple[tzinfo, str | None]:
    """Check when a schedule fires (``every`` checked already); its zone and the zone's
    name (None for ``every``). ValueError/TypeError naming what is wrong."""
    if misfire not in MISFIRE:
        raise ValueError(f"misfire must be one of {', '.join(MISFIRE)}, got {show(misfire)}")
    check_int("max_instances", max_instances, minimum=1)
    if (every is None) == (cron is None):
        raise ValueError(
            f"give every= or cron=, exactly one (got every={show(every)}, cron={show(cron)})"
        )
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end must be after start, got start={start}, end={end}")
    if cron is not None:
        _expression, zone, name = cron_trigger(cron, timezone)
        return zone, name
    if timezone is not None:
        raise ValueError(
            f"timezone applies to cron= only (every= counts seconds), got {show(timezone)}"
        )
    return UTC, None


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as ``TaskManager.schedules()`` shows it (a snapshot)."""

    schedule_id: str
    name: str
    every: float | None
    cron: str | None
    timezone: str | None
    start: datetime | None
    end: datetime | None
    misfire: str
    max_instances: int
    paused: bool
    next_run: datetime | None
    """When it fires next (None: paused, or past its ``end``)."""
    last_run: datetime | None
    fired: int
    """Tasks it registered."""
    skipped: int
    """Runs it let go: missed (``misfire``) or with ``max_instances`` unfinished."""
    running: int
    """Its tasks not finished yet."""


@dataclass(slots=True, eq=False)
class _Schedule:
    schedule_id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] | None
    options: dict[str, Any]  # SubmitTask's other fields (priority, retries, ...)
    trigger: Trigger
    timezone: str | None
    misfire: str
    max_instances: int
    created_at: float
    paused: bool = False
    next_run: float | None = None
    last_run: float | None = None
    fired: int = 0
    skipped: int = 0
    instances: list[str] = field(default_factory=list)
    handle: TimerHandle | None = None

    def row(self) -> tuple[Any, ...]:
        """Its row in the journal's ``schedules`` table (see durability/journal.py)."""
        payload = pickle.dumps(
            (self.func, self.args, dict(self.kwargs or {}), self.options), pickle.HIGHEST_PROTOCOL
        )
        trigger = self.trigger
        return (
            self.schedule_id,
            self.name,
            func_name(self.func),
            payload,
            trigger.every,
            trigger.cron,
            self.timezone,
            trigger.start,
            trigger.end,
            self.misfire,
            self.max_instances,
            int(self.paused),
            self.next_run,
            self.last_run,
            self.fired,
            self.skipped,
            self.created_at,
        )


def _moment(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class Schedules:
    """Every schedule of a system: added, fired on the timer thread, paused, removed.

    ``register(request)`` registers a firing's task without waiting for its journal
    commit (the timer thread's calls are short). With a journal, every change of a
    schedule is journaled (``store.schedule_changed``): a restart resumes each one, and
    the runs it missed meanwhile follow its ``misfire``.
    """

    def __init__(
        self, store: TaskStore, timer: TimerService, register: Callable[[SubmitTask], str]
    ) -> None:
        self._store = store
        self._timer = timer
        self._register = register
        self._lock = threading.RLock()
        self._schedules: dict[str, _Schedule] = {}
        self._running = False

    # -- the application's calls ---------------------------------------------------------------

    def add(
        self,
        name: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        options: dict[str, Any],
        *,
        every: float | None,
        cron: str | None,
        zone: tzinfo,
        zone_name: str | None,
        start: float | None,
        end: float | None,
        misfire: str,
        max_instances: int,
        durable: bool,
    ) -> str:
        """Add a schedule whose fields the caller checked (its time zone as
        ``check_timing`` gave it); its id. With a journal it is committed when this
        returns (``durable``: the caller checked it pickles)."""
        check_text("name", name, allow_empty=False, storable=True)
        now = self._store.wall()
        schedule = _Schedule(
            uuid4_text(),
            name,
            func,
            args,
            kwargs,
            options,
            Trigger(every=every, cron=cron, zone=zone, anchor=now, start=start, end=end),
            zone_name,
            misfire,
            max_instances,
            created_at=now,
        )
        schedule.next_run = schedule.trigger.next_after(now)
        with self._lock:
            self._schedules[schedule.schedule_id] = schedule
            if durable:
                try:
                    self._store.schedule_changed(schedule.schedule_id, schedule.row(), wait=True)
                except BaseException:
                    del self._schedules[schedule.schedule_id]
                    raise
            if self._running:
                self._arm(schedule)
        _log.info(
            "schedule.added",
            schedule_id=schedule.schedule_id,
            schedule_name=name,
            next_run=schedule.next_run,
        )
        return schedule.schedule_id

    def remove(self, schedule_id: str) -> bool:
        """Remove a schedule (its tasks registered already go on); False if unknown."""
        with self._lock:
            schedule = self._schedules.pop(schedule_id, None)
            if schedule is None:
                return False
            if schedule.handle is not None:
                schedule.handle.cancel()
            self._store.schedule_changed(schedule_id, None, wait=True)
        _log.info("schedule.removed", schedule_id=schedule_id, schedule_name=schedule.name)
        return True

    def pause(self, schedule_id: str) -> bool:
        """Fire no more until ``resume``; False if unknown."""
        with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None:
                return False
            if not schedule.paused:
                schedule.paused = True
                if schedule.handle is not None:
                    schedule.handle.cancel()
                    schedule.handle = None
                self._save(schedule, wait=True)
            return True

    def resume(self, schedule_id: str) -> bool:
        """Fire again from now on (the runs due while it was paused are not made up for);
        False if unknown."""
        with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None:
                return False
            if schedule.paused:
                schedule.paused = False
                schedule.next_run = schedule.trigger.next_after(self._store.wall())
                self._save(schedule, wait=True)
                if self._running:
                    self._arm(schedule)
            return True

    def runs(self, schedule_id: str) -> tuple[Callable[..., Any], tuple[Any, ...], Any] | None:
        """What a schedule's runs call: (func, args, kwargs); None if unknown."""
        with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None:
                return None
            return schedule.func, schedule.args, schedule.kwargs

    def infos(self) -> list[ScheduleInfo]:
        with self._lock:
            return [self._info(s) for s in self._schedules.values()]

    def _info(self, schedule: _Schedule) -> ScheduleInfo:
        trigger = schedule.trigger
        return ScheduleInfo(
            schedule.schedule_id,
            schedule.name,
            trigger.every,
            trigger.cron,
            schedule.timezone,
            _moment(trigger.start),
            _moment(trigger.end),
            schedule.misfire,
            schedule.max_instances,
            schedule.paused,
            None if schedule.paused else _moment(schedule.next_run),
            _moment(schedule.last_run),
            schedule.fired,
            schedule.skipped,
            len(self._unfinished(schedule)),
        )

    # -- the system's calls ----------------------------------------------------------------------

    def start(self) -> None:
        """Arm every schedule (the system started): missed runs follow ``misfire``."""
        with self._lock:
            self._running = True
            for schedule in self._schedules.values():
                self._arm(schedule)

    def stop(self) -> None:
        """Fire no more (the system stops): every timer is cancelled."""
        with self._lock:
            self._running = False
            for schedule in self._schedules.values():
                if schedule.handle is not None:
                    schedule.handle.cancel()
                    schedule.handle = None

    def restore(self, schedule: _Schedule) -> None:
        """Take a schedule read back from the journal; its unfinished tasks count
        against ``max_instances`` again."""
        sid = schedule.schedule_id
        schedule.instances = [
            task.task_id
            for task in self._store.snapshots(
                lambda t: t.status not in TERMINAL and t.metadata.get("schedule") == sid
            )
        ]
        with self._lock:
            self._schedules[sid] = schedule

    # -- firing ------------------------------------------------------------------------------------

    def _arm(self, schedule: _Schedule) -> None:
        """Under the lock: set the timer for the schedule's next run."""
        if schedule.handle is not None:
            schedule.handle.cancel()
            schedule.handle = None
        if schedule.paused or schedule.next_run is None:
            return
        delay = min(max(0.0, schedule.next_run - self._store.wall()), MAX_SECONDS)
        sid = schedule.schedule_id
        schedule.handle = self._timer.call_later(delay, lambda: self._fire(sid))

    def _unfinished(self, schedule: _Schedule) -> list[str]:
        status = self._store.status
        schedule.instances = [
            t for t in schedule.instances if (s := status(t)) is not None and s not in TERMINAL
        ]
        return schedule.instances

    def _fire(self, schedule_id: str) -> None:
        """On the timer thread: register the runs that are due, as ``misfire`` says. A
        failure (the journal's, say) is logged and the schedule goes on."""
        with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None or schedule.paused or not self._running:
                return
            schedule.handle = None
            try:
                self._fire_locked(schedule)
            except Exception as error:  # noqa: BLE001 - logged; the next run is armed
                _log.error(
                    "schedule.fire_failed",
                    schedule_id=schedule_id,
                    schedule_name=schedule.name,
                    error=repr(error),
                )
                if self._running and schedule.handle is None:
                    self._arm(schedule)

    def _fire_locked(self, schedule: _Schedule) -> None:
        """Under the lock: the due runs, the next run armed."""
        schedule_id = schedule.schedule_id
        now = self._store.wall()
        trigger = schedule.trigger
        due: list[float] = []
        moment = schedule.next_run
        while moment is not None and moment <= now and len(due) <= MAX_CATCH_UP:
            due.append(moment)
            moment = trigger.next_after(moment)
        if moment is not None and moment <= now:  # more than MAX_CATCH_UP behind
            moment = trigger.next_after(now)
        if not due:  # woken early (a capped wait, the wall clock went back)
            self._arm(schedule)
            return
        schedule.next_run = moment
        if schedule.misfire == "run_all":
            runs = due[-MAX_CATCH_UP:]
        elif schedule.misfire == "run_once":
            runs = due[-1:]
        else:  # skip: only a run that is on time
            runs = [d for d in due[-1:] if now - d <= MISFIRE_GRACE]
        schedule.skipped += len(due) - len(runs)
        if len(due) > len(runs):
            _log.warning(
                "schedule.misfired",
                schedule_id=schedule_id,
                schedule_name=schedule.name,
                missed=len(due) - len(runs) if schedule.misfire != "skip" else len(due),
                misfire=schedule.misfire,
            )
        for run in runs:
            if len(self._unfinished(schedule)) >= schedule.max_instances:
                schedule.skipped += 1
                _log.info(
                    "schedule.skipped",
                    schedule_id=schedule_id,
                    schedule_name=schedule.name,
                    max_instances=schedule.max_instances,
                )
                continue
            if not self._register_run(schedule, run):
                return  # the system stops: no more runs
        self._save(schedule, wait=False)
        self._arm(schedule)

    def _register_run(self, schedule: _Schedule, run: float) -> bool:
        metadata = dict(schedule.options.get("metadata") or {})
        fired_at = datetime.fromtimestamp(run, UTC)
        metadata.update(
            schedule=schedule.schedule_id,
            schedule_name=schedule.name,
            fire_time=fired_at.isoformat(),
        )
        request = SubmitTask(
            schedule.name,
            schedule.func,
            args=schedule.args,
            kwargs=schedule.kwargs,
            **{**schedule.options, "metadata": metadata},
        )
        try:
            task_id = self._register(request)
        except RuntimeError:  # the system is stopping
            self._running = False
            return False
        except Exception as error:  # noqa: BLE001 - one bad run never ends the schedule
            schedule.skipped += 1
            _log.error(
                "schedule.run_refused",
                schedule_id=schedule.schedule_id,
                schedule_name=schedule.name,
                error=repr(error),
            )
            return True
        schedule.instances.append(task_id)
        schedule.fired += 1
        schedule.last_run = run
        return True

    def _save(self, schedule: _Schedule, *, wait: bool) -> None:
        if self._store.journaled:  # (without a journal its function need not pickle)
            self._store.schedule_changed(schedule.schedule_id, schedule.row(), wait=wait)


def read_schedule(row: Any) -> _Schedule:
    """A schedule from its journal row (``sqlite3.Row``); ValueError if it cannot be read
    back (its function no longer imports, ...)."""
    try:
        func, args, kwargs, options = pickle.loads(row["payload"])
        zone: tzinfo = UTC
        if row["cron"] is not None:
            zone, _name = zone_of(row["timezone"])
        trigger = Trigger(
            every=row["every"],
            cron=row["cron"],
            zone=zone,
            anchor=row["created_at"],
            start=row["start"],
            end=row["end"],
        )
        return _Schedule(
            row["schedule_id"],
            row["name"],
            func,
            tuple(args),
            kwargs or None,
            dict(options),
            trigger,
            row["timezone"],
            row["misfire"],
            int(row["max_instances"]),
            created_at=row["created_at"],
            paused=bool(row["paused"]),
            next_run=row["next_run"],
            last_run=row["last_run"],
            fired=int(row["fired"]),
            skipped=int(row["skipped"]),
        )
    except (Exception, SystemExit) as error:  # noqa: BLE001 - it cannot be read back
        raise ValueError(f"{type(error).__name__}: {error}") from None
