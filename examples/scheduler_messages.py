"""An application that talks to the scheduler actor with messages only.

Run it:  python examples/scheduler_messages.py

An event collector (the application's own pykka actor, supervised by the system)
subscribes to the scheduler's events; tasks are submitted, started and read back with the
messages of ``actors.messages``. No TaskManager object is used.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import pykka

from actors import ActorSystem, TaskStatus, current_task, messages


class EventCollector(pykka.ThreadingActor):
    """Records every event; sets ``all_done`` once each watched task has ended."""

    def __init__(self, watched: set[str], all_done: threading.Event) -> None:
        super().__init__()
        self.watched = set(watched)
        self.all_done = all_done
        self.log: list[str] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, messages.TaskStarted):
            self.log.append(f"started   {message.name} (attempt {message.attempt})")
        elif isinstance(message, messages.TaskRetrying):
            self.log.append(f"retrying  {message.task_id} in {message.delay:.2f}s: {message.error}")
        elif isinstance(message, messages.TaskSucceeded):
            self.log.append(f"succeeded {message.task_id} -> {message.result!r}")
        elif isinstance(message, messages.TaskFailed):
            error = message.to_error()
            self.log.append(f"failed    {message.task_id} [{message.kind.value}] {error}")
        if isinstance(message, messages.TaskSucceeded | messages.TaskFailed):
            self.watched.discard(message.task_id)
            if not self.watched:
                self.all_done.set()
        return None

    def events(self) -> list[str]:
        return list(self.log)


def checksum(data: str) -> int:
    return sum(map(ord, data)) % 65521


def unreliable(data: str) -> str:
    if current_task().attempt == 1:
        raise TimeoutError("upstream did not answer")
    return data.upper()


def broken() -> None:
    raise KeyError("missing-field")


def main() -> int:
    ids = {"checksum", "upper", "broken", "after-broken"}
    all_done = threading.Event()
    with ActorSystem(max_concurrent_tasks=2) as system:
        scheduler = system.scheduler
        collector = system.spawn(EventCollector, ids, all_done, name="collector")
        scheduler.ask(messages.Subscribe(collector))
        submit = [
            messages.SubmitTask("checksum", checksum, args=("actors",), task_id="checksum"),
            messages.SubmitTask(
                "upper", unreliable, args=("hello",), task_id="upper", max_retries=1, retry_delay=0
            ),
            messages.SubmitTask("broken", broken, task_id="broken"),
            messages.SubmitTask(
                "after-broken",
                checksum,
                args=("x",),
                task_id="after-broken",
                dependencies=("broken",),
            ),
        ]
        for request in submit:
            scheduler.ask(request, timeout=5)
        try:
            scheduler.ask(
                messages.SubmitTask("orphan", checksum, dependencies=("nope",)), timeout=5
            )
        except Exception as error:  # noqa: BLE001 - shown to the reader
            print(f"refused: {type(error).__name__}: {error}")
        scheduler.tell(messages.Start())
        if not all_done.wait(10):
            print("tasks did not finish in time")
            return 1
        print("events:")
        for line in collector.proxy().events().get(timeout=5):
            print("  " + line)
        print("statuses:")
        for task_id in sorted(ids):
            status = cast(TaskStatus, scheduler.ask(messages.GetStatus(task_id), timeout=5))
            print(f"  {task_id:13} {status.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
