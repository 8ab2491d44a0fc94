"""The dashboard's two numbers (docs/performance.md): first paint with 100,000 tasks, and
the manager's throughput with a dashboard open and streaming against without one.

    python examples/dashboard_bench.py [--tasks 100000] [--run 20000] [--repeat 9]

Needs the dashboard extra, Playwright and a Chromium (``--chromium``, /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import statistics
import time
import urllib.request
from typing import Any

from actors import TaskManager
from actors.dashboard import serve

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def noop() -> None:
    return None


def timed_run(tm: TaskManager, count: int) -> tuple[float, float, float | None]:
    """Tasks per second for ``count`` no-op tasks, registered and waited for; this
    process's CPU per task in microseconds (every thread: the manager's and the
    dashboard's); the browser's CPU seconds meanwhile (None where /proc cannot say)."""
    gc.collect()
    browser_before = browser_cpu()
    cpu = time.process_time()
    start = time.perf_counter()
    ids = [tm.register_task("noop", noop) for _ in range(count)]
    for task_id in ids:
        tm.future(task_id).result(60)
    rate = count / (time.perf_counter() - start)
    used = (time.process_time() - cpu) / count * 1e6
    browser_after = browser_cpu()
    if browser_before is None or browser_after is None:
        return rate, used, None
    return rate, used, browser_after - browser_before


def browser_cpu() -> float | None:
    """CPU seconds used so far by every Chromium process on this machine (Linux /proc)."""
    if not os.path.isdir("/proc/self"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as file:
                name, _, rest = file.read().rpartition(")")
        except OSError:
            continue  # ended meanwhile
        if "chrom" in name:
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def first_paint(browser: Any, tasks: int) -> dict[str, Any]:
    """Open the task table of a manager holding ``tasks`` finished tasks."""
    with TaskManager(keep_finished=None) as tm:
        ids = [tm.register_task(f"task-{n}", noop, tags=[f"t{n % 10}"]) for n in range(tasks)]
        tm.future(ids[-1]).result(120)
        with serve(tm) as served:
            answers = {}
            for query in ("", "?status=completed&tag=t3", "?sort=name", "?offset=99950"):
                start = time.perf_counter()
                with urllib.request.urlopen(f"{served.url}api/tasks{query}") as response:
                    response.read()
                answers[f"api/tasks{query}"] = round((time.perf_counter() - start) * 1000, 1)
            page = browser.new_page()
            page.goto(served.url)
            page.wait_for_selector("#tasks tr[data-task]")
            shown = page.evaluate("performance.now()")
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
            )
            page.close()
    return {"table_ms": round(shown, 1), "first_contentful_paint_ms": paint, "api_ms": answers}


def throughput(browser: Any, count: int, repeat: int) -> dict[str, Any]:
    """Runs of ``count`` tasks with no page open, with a blank page open (the browser's
    own cost: on a 2-core machine it takes CPU from the manager whatever it shows), and
    with the task table open and streaming, on one manager. A round runs each once, in
    an order that turns from round to round; the ratios are each round's own, and their
    median is the figure: a shared machine's load drifts from one second to the next,
    and a ratio within a round sees the same machine. Each page settles for a second
    and a half before its run."""
    modes = ("none", "blank", "dashboard")
    runs: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    chromium: dict[str, list[float]] = {mode: [] for mode in modes}
    with TaskManager() as tm, serve(tm) as served:
        timed_run(tm, count // 10)  # warm up
        for round_ in range(repeat):
            for mode in modes[round_ % 3 :] + modes[: round_ % 3]:
                page = None if mode == "none" else browser.new_page()
                if page is not None:
                    page.goto("about:blank" if mode == "blank" else served.url)
                    if mode == "dashboard":
                        page.wait_for_selector("#live.on")  # the event stream is open
                    page.wait_for_timeout(1500)
                rate, used, browser_used = timed_run(tm, count)
                runs[mode].append(rate)
                cpu[mode].append(used)
                if browser_used is not None:
                    chromium[mode].append(browser_used)
                if page is not None:
                    page.close()
                for task_id in [t.task_id for t in tm.get_all_tasks()]:
                    tm.forget(task_id)  # each run starts from the same table
    median = {mode: statistics.median(values) for mode, values in runs.items()}

    def ratio(mode: str, other: str) -> float:
        return round(
            statistics.median(a / b for a, b in zip(runs[mode], runs[other], strict=True)), 3
        )

    return {
        "tasks_per_s": {mode: round(value, 1) for mode, value in median.items()},
        "dashboard_vs_none": ratio("dashboard", "none"),
        "dashboard_vs_blank_page": ratio("dashboard", "blank"),
        "runs": {mode: [round(x) for x in values] for mode, values in runs.items()},
        "cpu_us_per_task": {mode: round(statistics.median(v), 1) for mode, v in cpu.items()},
        "browser_cpu_s_per_run": {
            mode: round(statistics.median(v), 2) for mode, v in chromium.items() if v
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks for the first paint")
    parser.add_argument("--run", type=int, default=20_000, help="tasks per throughput run")
    parser.add_argument("--repeat", type=int, default=9, help="rounds of the three runs")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=options.chromium, args=ARGS)
        try:
            result = {
                "first_paint": first_paint(browser, options.tasks),
                "throughput": throughput(browser, options.run, options.repeat),
            }
        finally:
            browser.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
