"""The main demo: a WiseFlow-like crawl pipeline run by the task manager, on local data.

Run it:  python examples/pipeline.py

fetch page -> extract text and links -> summarize, for eight pages, then one report.
The front page has a high priority, one server is flaky (its fetch fails twice and
succeeds on the third attempt), one is so slow that its fetch times out (its extract and
summarize then fail with TaskDependencyError). Tasks report progress, shown live.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from actors import TaskManager, TaskPriority, TaskStatus, current_task

SITE = {
    "/": "<h1>Front page</h1> Actors supervise tasks. <a href='/news'> <a href='/docs'>",
    "/news": "<h1>News</h1> The scheduler restarts without losing a task. <a href='/'>",
    "/docs": "<h1>Docs</h1> Register tasks, give dependencies, await results. <a href='/api'>",
    "/api": "<h1>API</h1> register_task execute_task cancel_task future get_metrics",
    "/blog": "<h1>Blog</h1> Retries back off exponentially; cancellation is final.",
    "/about": "<h1>About</h1> One task manager instead of four. <a href='/'>",
    "/faq": "<h1>FAQ</h1> Why actors? Supervision: failures are messages, not surprises.",
    "/archive": "<h1>Archive</h1> Very old pages served very slowly.",
}
FLAKY = "/news"  # fails its first two attempts
SLOW = "/archive"  # never answers within its timeout


def fetch(path: str) -> str:
    """Fetch a page (simulated latency, in steps, reporting progress)."""
    context = current_task()
    for step in range(1, 6):
        time.sleep(0.01)
        context.report_progress(step / 5, f"fetching {path}")
    if path == FLAKY and context.attempt < 3:
        raise ConnectionError(f"{path}: connection reset (attempt {context.attempt})")
    return SITE[path]


async def fetch_slow(path: str) -> str:
    """A server that answers far too slowly: the timeout cancels this coroutine."""
    context = current_task()
    for step in range(1, 101):
        await asyncio.sleep(0.05)
        context.report_progress(step / 100, f"waiting for {path}")
    return SITE[path]


def extract(tm: TaskManager, fetch_id: str) -> dict[str, Any]:
    html = tm.get_task_result(fetch_id)
    text = re.sub(r"<[^>]+>", " ", html)
    return {"text": " ".join(text.split()), "links": re.findall(r"href='([^']+)'", html)}


async def summarize(tm: TaskManager, extract_id: str) -> str:
    page = tm.get_task_result(extract_id)
    await asyncio.sleep(0.02)  # a call to a summarizing service
    words = page["text"].split()
    return " ".join(words[:6]) + (" ..." if len(words) > 6 else "")


def report(tm: TaskManager, summary_ids: list[str]) -> str:
    return "\n".join(
        f"{i.removeprefix('summarize:'):9} {tm.get_task_result(i)}" for i in summary_ids
    )


class LiveProgress:
    """One status line redrawn in place on a terminal; a line per change otherwise."""

    def __init__(self, tm: TaskManager) -> None:
        self.tm = tm
        self.tty = sys.stdout.isatty()
        self.last = ""

    def show(self) -> None:
        metrics = self.tm.get_metrics()
        running = [t for t in self.tm.get_tasks_by_status(TaskStatus.RUNNING)]
        current = ", ".join(f"{t.name} {t.progress:.0%}" for t in running[:3])
        line = (
            f"done {metrics['completed_tasks']:2}  failed {metrics['failed_tasks']}  "
            f"running {metrics['running_tasks']}  waiting "
            f"{metrics['waiting_tasks'] + metrics['pending_tasks']:2}  {current}"
        )
        if self.tty:
            print(f"\r{line:<100}", end="", flush=True)
        elif line.split("  ")[:2] != self.last.split("  ")[:2]:
            print(line)
        self.last = line

    def end(self) -> None:
        if self.tty:
            print()


async def watch(tm: TaskManager, task_ids: list[str], progress: LiveProgress) -> None:
    """Wait for every task to end (success or not), redrawing the progress line."""
    waiting = {asyncio.ensure_future(asyncio.wrap_future(tm.future(i))) for i in task_ids}
    while waiting:
        done, waiting = await asyncio.wait(waiting, timeout=0.1)
        for future in done:
            future.exception()  # failures are read from the tasks below, not raised here
        progress.show()
    progress.end()


def summary_table(tm: TaskManager) -> str:
    rows = [f"{'task':20} {'status':10} {'attempts':>8} {'seconds':>8}  note"]
    for task in tm.get_all_tasks():
        seconds = (
            f"{(task.completed_at - task.started_at).total_seconds():8.2f}"
            if task.started_at and task.completed_at
            else f"{'-':>8}"
        )
        note = "" if task.error is None else f"{type(task.error).__name__}: {task.error}"
        if task.status is TaskStatus.COMPLETED and task.attempt > 1:
            note = f"succeeded after {task.attempt - 1} retries"
        rows.append(f"{task.name:20} {task.status.name:10} {task.attempt:8} {seconds}  {note[:76]}")
    return "\n".join(rows)


async def main() -> int:
    async with TaskManager(max_concurrent_tasks=4) as tm:
        progress = LiveProgress(tm)
        summaries: list[str] = []
        for path in SITE:
            priority = TaskPriority.HIGH if path == "/" else TaskPriority.NORMAL
            if path == SLOW:
                fetched = tm.register_task(
                    f"fetch {path}",
                    fetch_slow,
                    path,
                    task_id=f"fetch:{path}",
                    timeout=0.3,
                    metadata={"path": path},
                )
            else:
                fetched = tm.register_task(
                    f"fetch {path}",
                    fetch,
                    path,
                    task_id=f"fetch:{path}",
                    priority=priority,
                    max_retries=3,
                    retry_delay=0.05,
                    timeout=2.0,
                    metadata={"path": path},
                )
            extracted = tm.register_task(
                f"extract {path}",
                extract,
                tm,
                fetched,
                task_id=f"extract:{path}",
                dependencies=[fetched],
                priority=priority,
            )
            summaries.append(
                tm.register_task(
                    f"summarize {path}",
                    summarize,
                    tm,
                    extracted,
                    task_id=f"summarize:{path}",
                    dependencies=[extracted],
                )
            )
        await watch(tm, summaries, progress)
        # The report covers the pages that made it: depending on every summary would make
        # one slow server fail the whole report with TaskDependencyError.
        made_it = [i for i in summaries if tm.get_task_status(i) is TaskStatus.COMPLETED]
        final = tm.register_task("report", report, tm, made_it, dependencies=made_it)
        text = await tm.execute_task(final)
        print("\nReport")
        print(text)
        print("\nTasks")
        print(summary_table(tm))
        metrics = tm.get_metrics()
        print(
            f"\n{metrics['completed_tasks']} completed, {metrics['failed_tasks']} failed, "
            f"{metrics['cancelled_tasks']} cancelled"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
