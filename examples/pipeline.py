"""The main demo: a WiseFlow-like crawl pipeline run by the task manager, on local data.

Run it:  python examples/pipeline.py [--quiet]

Each of the eight pages of a fake site (in memory, no network) is fetched, its text and
links extracted, its text summarized; then one report gathers the summaries. It shows:

- dependencies: extract waits for its page's fetch, summarize for its extract;
- priorities: the front page is HIGH, so it is fetched first though the sitemap lists it last;
- retries: /news is flaky, its fetch fails twice and succeeds on the third attempt;
- timeouts: /archive never answers in time, its fetch times out on each of its three
  attempts and fails with TaskTimeoutError, and its extract and summarize then fail with
  TaskDependencyError without running; the report is still written, from the other pages;
- progress: tasks call ``report_progress``; on a terminal a rich progress bar shows it live,
  elsewhere a line per change (``--quiet`` turns it off);
- at the end, a table of every task: status, attempts, duration and what went wrong,
  and beside it the task graph, nodes coloured by status (Mermaid; ``--graph PATH``
  writes it to a file instead, as DOT if PATH ends in ``.dot``).

``examples/observe.py`` runs this same pipeline traced with OpenTelemetry, its events
written as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from actors import (
    TaskDependencyError,
    TaskExecutionError,
    TaskManager,
    TaskPriority,
    TaskStatus,
    TaskTimeoutError,
    current_task,
)

# The site, in sitemap order. The front page comes last here, but it has a HIGH priority.
SITE = {
    "/about": "<h1>About</h1> One task manager instead of four. <a href='/'>",
    "/api": "<h1>API</h1> register_task execute_task cancel_task future get_metrics",
    "/archive": "<h1>Archive</h1> Very old pages, served very slowly.",
    "/blog": "<h1>Blog</h1> Retries back off exponentially; cancellation is final.",
    "/docs": "<h1>Docs</h1> Register tasks, give dependencies, await results. <a href='/api'>",
    "/faq": "<h1>FAQ</h1> Why actors? Supervision: failures are messages, not surprises.",
    "/news": "<h1>News</h1> The scheduler restarts without losing a task. <a href='/'>",
    "/": "<h1>Front page</h1> Actors supervise tasks. <a href='/news'> <a href='/docs'>",
}
FRONT_PAGE = "/"
FLAKY = "/news"  # its fetch fails on attempts 1 and 2
SLOW = "/archive"  # its fetch never finishes within FETCH_TIMEOUT
FETCH_TIMEOUT = 0.4  # seconds, per attempt


@dataclass(frozen=True)
class Page:
    path: str
    text: str
    links: list[str]


# -- the tasks ---------------------------------------------------------------------------------


def fetch(path: str) -> str:
    """Fetch a page. Thread work: it sleeps in short steps, where a timeout can stop it."""
    task = current_task()
    for step in range(1, 6):
        time.sleep(0.01)  # network latency
        task.report_progress(step / 5, f"downloading {path}")
    if path == FLAKY and task.attempt < 3:
        raise ConnectionError(f"{path}: connection reset (attempt {task.attempt})")
    return SITE[path]


async def fetch_slow(path: str) -> str:
    """A server that answers far too late. A coroutine: at the timeout it is cancelled."""
    task = current_task()
    for step in range(1, 101):
        await asyncio.sleep(0.05)
        task.report_progress(step / 100, f"waiting for {path}")
    return SITE[path]


def extract(tm: TaskManager, path: str, fetch_id: str) -> Page:
    """Text and links of a fetched page (the fetch's result, read from the manager)."""
    html: str = tm.get_task_result(fetch_id)
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return Page(path, text, re.findall(r"href='([^']+)'", html))


async def summarize(tm: TaskManager, extract_id: str) -> str:
    """The first words of the page: stands for a call to a summarizing service."""
    page: Page = tm.get_task_result(extract_id)
    task = current_task()
    words = page.text.split()
    for step in range(1, 3):
        await asyncio.sleep(0.01)
        task.report_progress(step / 2, f"summarizing {page.path}")
    links = f" [links: {' '.join(page.links)}]" if page.links else ""
    return " ".join(words[:6]) + (" ..." if len(words) > 6 else "") + links


def report(tm: TaskManager, summaries: dict[str, str]) -> str:
    """One line per page: its summary, or why there is none."""
    lines = []
    for path, summary_id in summaries.items():
        if tm.get_task_status(summary_id) is TaskStatus.COMPLETED:
            lines.append(f"{path:9} {tm.get_task_result(summary_id)}")
        else:
            lines.append(f"{path:9} -- missing: {root_cause(tm, summary_id)}")
    return "\n".join(lines)


# -- reading the outcome -------------------------------------------------------------------------


def name_of(tm: TaskManager, task_id: str) -> str:
    task = tm.get_task(task_id)
    return task_id if task is None else task.name


def root_cause(tm: TaskManager, task_id: str) -> str:
    """Follow TaskDependencyErrors back to the task that failed by itself."""
    error = tm.get_task_error(task_id)
    while isinstance(error, TaskDependencyError) and "dependency" in error.details:
        task_id = error.details["dependency"]
        error = tm.get_task_error(task_id)
    return f"{name_of(tm, task_id)} failed with {type(error).__name__}"


def note(tm: TaskManager, task_id: str) -> str:
    """What the summary table says about a task beyond its status."""
    task = tm.get_task(task_id)
    assert task is not None
    error = tm.get_task_error(task_id)  # None unless the task ended FAILED or CANCELLED
    if isinstance(error, TaskTimeoutError):
        details = error.details
        return f"TaskTimeoutError: attempt {details['attempt']} took over {details['timeout']}s"
    if isinstance(error, TaskDependencyError):
        dependency = error.details["dependency"]
        status = error.details["dependency_status"]
        return f"TaskDependencyError: {name_of(tm, dependency)} is {status}"
    if isinstance(error, TaskExecutionError):
        return f"TaskExecutionError: {error.original_error!r}"
    if error is not None:
        return f"{type(error).__name__}: {error}"
    if task.attempt > 1:
        return f"succeeded after {task.attempt - 1} retries"
    return ""


def summary_table(tm: TaskManager) -> str:
    rows = [f"{'task':20} {'status':10} {'attempts':>8} {'seconds':>8}  note"]
    for task in tm.get_all_tasks():  # in registration order
        if task.started_at is not None and task.completed_at is not None:
            seconds = f"{(task.completed_at - task.started_at).total_seconds():8.2f}"
        else:
            seconds = f"{'-':>8}"  # never started
        rows.append(
            f"{task.name:20} {task.status.name:10} {task.attempt:8} {seconds}  "
            f"{note(tm, task.task_id)}"
        )
    return "\n".join(rows)


def fetch_order(tm: TaskManager, fetches: list[str]) -> str:
    """The pages in the order their fetches started (ties: the scheduler's own order)."""
    tasks = [task for task in map(tm.get_task, fetches) if task and task.started_at]
    tasks.sort(key=lambda t: (t.started_at, -t.priority, fetches.index(t.task_id)))
    return " ".join(task.metadata["path"] for task in tasks)


# -- live progress -------------------------------------------------------------------------------


class StatusLine:
    """Live progress. On a terminal, rich's progress bar over the pipeline's tasks with the
    running ones beside it; elsewhere (a pipe, a file, the tests) a plain line each time
    the counts change, so that the output stays readable."""

    def __init__(self, tm: TaskManager, *, enabled: bool) -> None:
        self.tm = tm
        self.enabled = enabled
        self.began = time.monotonic()
        self.last_counts: tuple[int, ...] = ()
        self.bar: Progress | None = None
        if enabled and Console().is_terminal:
            self.bar = Progress(
                TextColumn("{task.description:<48}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            self.row = self.bar.add_task("starting", total=tm.get_metrics()["total_tasks"])
            self.bar.start()

    def update(self) -> None:
        if not self.enabled:
            return
        metrics = self.tm.get_metrics()
        counts = (
            metrics["completed_tasks"],
            metrics["failed_tasks"],
            metrics["running_tasks"],
            metrics["waiting_tasks"] + metrics["pending_tasks"],
        )
        if self.bar is not None:
            running = []
            for task in self.tm.get_tasks_by_status(TaskStatus.RUNNING)[:2]:
                progress = self.tm.get_task_progress(task.task_id)
                fraction, message = progress if progress is not None else (0.0, "")
                running.append(f"{message or task.name} {fraction:.0%}")
            self.bar.update(
                self.row,
                completed=counts[0] + counts[1],
                description=", ".join(running) or f"{counts[1]} failed",
            )
        elif counts != self.last_counts:
            print(
                f"[{time.monotonic() - self.began:4.1f}s] {counts[0]:2} done, {counts[1]} failed, "
                f"{counts[2]} running, {counts[3]:2} to go",
                flush=True,  # a pipe (a log collector, tee) sees each line as it happens
            )
        self.last_counts = counts

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def wait_showing_progress(tm: TaskManager, task_ids: list[str], status: StatusLine) -> None:
    """Wait until every task in ``task_ids`` has ended, well or not, redrawing the status."""
    outcomes = [asyncio.wrap_future(tm.future(task_id)) for task_id in task_ids]
    everything = asyncio.gather(*outcomes, return_exceptions=True)  # failures are not raised
    while not everything.done():
        status.update()
        with contextlib.suppress(TimeoutError):  # shield: the timeout must not cancel it
            await asyncio.wait_for(asyncio.shield(everything), timeout=0.1)
    status.update()
    status.close()


# -- the pipeline --------------------------------------------------------------------------------


def register_pipeline(tm: TaskManager) -> tuple[list[str], dict[str, str]]:
    """Register every page's fetch, extract and summarize: (fetch ids, summary id by path).

    Called before the manager starts, so that the scheduler sees all the fetches at once
    and can pick the HIGH priority one first.
    """
    fetches: list[str] = []
    summaries: dict[str, str] = {}
    for path in SITE:
        priority = TaskPriority.HIGH if path == FRONT_PAGE else TaskPriority.NORMAL
        fetch_id = tm.register_task(
            f"fetch {path}",
            fetch_slow if path == SLOW else fetch,
            path,
            task_id=f"fetch:{path}",
            priority=priority,
            max_retries=2,  # network errors and timeouts are worth a retry
            retry_delay=0.05,  # then 0.1: the delay doubles at each retry
            timeout=FETCH_TIMEOUT,
            metadata={"path": path},
        )
        extract_id = tm.register_task(
            f"extract {path}",
            extract,
            tm,
            path,
            fetch_id,
            task_id=f"extract:{path}",
            priority=priority,
            dependencies=[fetch_id],
        )
        summaries[path] = tm.register_task(
            f"summarize {path}",
            summarize,
            tm,
            extract_id,
            task_id=f"summarize:{path}",
            priority=priority,
            dependencies=[extract_id],
        )
        fetches.append(fetch_id)
    return fetches, summaries


async def crawl(tm: TaskManager, summaries: dict[str, str], status: StatusLine) -> str:
    """Run the registered pipeline (the manager has started) and then its report: its text."""
    await wait_showing_progress(tm, list(summaries.values()), status)
    # The report is registered only now, depending on the summaries that COMPLETED. Had
    # it depended on all of them, the one slow server would have failed the whole report
    # with TaskDependencyError; this way it covers every page that made it and says why
    # the others are missing.
    made_it = [i for i in summaries.values() if tm.get_task_status(i) is TaskStatus.COMPLETED]
    report_id = tm.register_task("report", report, tm, summaries, dependencies=made_it)
    text: str = await tm.execute_task(report_id)
    return text


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quiet", action="store_true", help="no live progress")
    parser.add_argument(
        "--graph",
        metavar="PATH",
        help="write the task graph there (DOT if PATH ends in .dot, else Mermaid) "
        "instead of printing it as Mermaid",
    )
    options = parser.parse_args(argv)

    tm = TaskManager(max_concurrent_tasks=4)
    fetches, summaries = register_pipeline(tm)
    async with tm:
        text = await crawl(tm, summaries, StatusLine(tm, enabled=not options.quiet))

        print("\nReport")
        print(text)
        print(f"\nfetch order: {fetch_order(tm, fetches)}")
        print("\nTasks")
        print(summary_table(tm))
        # The same tasks as a picture: paste the Mermaid into a ```mermaid block (GitHub
        # renders it), or render the DOT with `dot -Tsvg`.
        if options.graph is None:
            print("\nGraph (Mermaid)")
            print(tm.graph("mermaid"), end="")
        else:
            graph = tm.graph("dot" if options.graph.endswith(".dot") else "mermaid")
            Path(options.graph).write_text(graph, encoding="utf-8")
            print(f"\nGraph written to {options.graph}")
        metrics = tm.get_metrics()
        print(
            f"\n{metrics['completed_tasks']} completed, {metrics['failed_tasks']} failed, "
            f"{metrics['cancelled_tasks']} cancelled"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
