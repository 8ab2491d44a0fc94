"""An application that talks to the scheduler actor with messages only.

Run it:  python examples/scheduler_messages.py

No TaskManager: tasks are submitted with ``SubmitTask``, the scheduler (which starts
paused) is started with ``Start``, a task is cancelled with ``CancelTask``, and tasks are
read back with ``GetStatus`` and ``GetTask``, all from ``actors.messages``. The
application's own pykka actor, an event collector spawned under the system's supervisor,
subscribes to the scheduler's events and sets a threading.Event once every task it
watches has ended, so the main thread waits without polling.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka

from actors import ActorSystem, Task, TaskDependencyError, TaskStatus, current_task, messages


class EventCollector(pykka.ThreadingActor):
    """Logs every event it is told; sets ``all_ended`` once each watched task has ended."""

    def __init__(self, watched: set[str], all_ended: threading.Event) -> None:
        super().__init__()
        self.watched = set(watched)
        self.all_ended = all_ended
        self.log: list[str] = []

    def on_receive(self, message: Any) -> None:
        match message:
            case messages.TaskStarted(task_id=task_id, attempt=attempt):
                self.log.append(f"started   {task_id} (attempt {attempt})")
            case messages.TaskProgress(task_id=task_id, fraction=fraction, message=text):
                self.log.append(f"progress  {task_id} {fraction:.0%} {text}")
            case messages.TaskRetrying(task_id=task_id, attempt=attempt, delay=delay):
                self.log.append(f"retrying  {task_id}: attempt {attempt} failed, next in {delay}s")
            case messages.TaskSucceeded(task_id=task_id, result=result):
                self.log.append(f"succeeded {task_id} -> {result!r}")
                self.ended(task_id)
            case messages.TaskFailed(task_id=task_id, kind=kind):
                error = message.to_error()  # the TaskError subclass this kind stands for
                self.log.append(f"failed    {task_id} [{kind.value}] {type(error).__name__}")
                self.ended(task_id)

    def ended(self, task_id: str) -> None:
        self.watched.discard(task_id)
        if not self.watched:
            self.all_ended.set()

    def events(self) -> list[str]:
        return list(self.log)


# -- the tasks ---------------------------------------------------------------------------------


def checksum(data: str) -> int:
    task = current_task()
    total = 0
    for n, char in enumerate(data, 1):
        total = (total + ord(char)) % 65521
        if n % 3 == 0 or n == len(data):
            task.report_progress(n / len(data), f"{n}/{len(data)} characters")
    return total


def shout(text: str) -> str:
    if current_task().attempt == 1:
        raise ConnectionError("upstream did not answer")  # the first attempt fails
    return text.upper()


def broken() -> None:
    raise KeyError("missing-field")


async def slow() -> str:
    await asyncio.sleep(10)  # cancelled at the task's timeout
    return "too late"


def main() -> int:
    requests = [
        messages.SubmitTask("checksum", checksum, args=("actors",), task_id="checksum"),
        messages.SubmitTask(
            "shout", shout, args=("hello",), task_id="shout", max_retries=1, retry_delay=0.05
        ),
        messages.SubmitTask("broken", broken, task_id="broken"),
        messages.SubmitTask(
            "after-broken", checksum, args=("x",), task_id="after-broken", dependencies=("broken",)
        ),
        messages.SubmitTask("slow", slow, task_id="slow", timeout=0.2),
        messages.SubmitTask(
            "publish", shout, args=("x",), task_id="publish", dependencies=("checksum",)
        ),
    ]
    ids = {request.task_id for request in requests if request.task_id is not None}
    all_ended = threading.Event()
    with ActorSystem(max_concurrent_tasks=2) as system:
        scheduler = system.scheduler
        collector = system.spawn(EventCollector, ids, all_ended, name="collector")
        scheduler.ask(messages.Subscribe(collector))  # before Start: no event is missed

        for request in requests:
            scheduler.ask(request, timeout=5)  # answers the task id, or raises the input error
        orphan = messages.SubmitTask("orphan", checksum, task_id="orphan", dependencies=("nope",))
        try:
            scheduler.ask(orphan, timeout=5)
        except TaskDependencyError as error:  # nothing is registered
            print(f"refused: {type(error).__name__}: {error}")
        cancelled = scheduler.ask(messages.CancelTask("publish"), timeout=5)
        print(f"cancelled publish before the start: {cancelled}")

        scheduler.tell(messages.Start())
        if not all_ended.wait(timeout=10):
            print("the tasks did not end in time")
            return 1

        print("events:")
        for line in collector.proxy().events().get(timeout=5):
            print(f"  {line}")
        print("tasks:")
        for task_id in sorted(ids):
            status: TaskStatus = scheduler.ask(messages.GetStatus(task_id), block=True, timeout=5)
            task: Task = scheduler.ask(messages.GetTask(task_id), block=True, timeout=5)
            done_well = status is TaskStatus.COMPLETED
            outcome = repr(task.result) if done_well else type(task.error).__name__
            print(f"  {task_id:13} {status.name:10} attempts {task.attempt}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
