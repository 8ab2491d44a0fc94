"""The dashboard's two numbers (docs/performance.md): first paint with 100,000 tasks, and
the manager's throughput with a dashboard open and streaming against without one.

    python examples/dashboard_bench.py [--tasks 100000] [--run 20000] [--repeat 3]

Needs the dashboard extra, Playwright and a Chromium (``--chromium``, /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
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


def run_tasks(tm: TaskManager, count: int) -> float:
    """Tasks per second for ``count`` no-op tasks, registered and waited for."""
    gc.collect()
    start = time.perf_counter()
    ids = [tm.register_task("noop", noop) for _ in range(count)]
    for task_id in ids:
        tm.future(task_id).result(60)
    return count / (time.perf_counter() - start)


def first_paint(browser: Any, tasks: int) -> dict[str, float]:
    """Open the task table of a manager holding ``tasks`` finished tasks."""
    with TaskManager(keep_finished=None) as tm:
        ids = [tm.register_task(f"task-{n}", noop, tags=[f"t{n % 10}"]) for n in range(tasks)]
        tm.future(ids[-1]).result(120)
        with serve(tm) as served:
            page = browser.new_page()
            page.goto(served.url)
            page.wait_for_selector("#tasks tr[data-task]")
            shown = page.evaluate("performance.now()")
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
            )
            page.close()
    return {"table_ms": round(shown, 1), "first_contentful_paint_ms": paint}


def throughput(browser: Any, count: int, repeat: int) -> dict[str, Any]:
    without, with_page = [], []
    for _ in range(repeat):
        with TaskManager() as tm:
            run_tasks(tm, count // 10)  # warm up
            without.append(run_tasks(tm, count))
        with TaskManager() as tm, serve(tm) as served:
            page = browser.new_page()
            page.goto(served.url)
            page.wait_for_selector("#live.on")  # the event stream is open
            run_tasks(tm, count // 10)
            with_page.append(run_tasks(tm, count))
            page.close()
    a, b = statistics.median(without), statistics.median(with_page)
    return {
        "without_tasks_per_s": round(a, 1),
        "with_dashboard_tasks_per_s": round(b, 1),
        "ratio": round(b / a, 3),
        "runs_without": [round(x) for x in without],
        "runs_with": [round(x) for x in with_page],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks for the first paint")
    parser.add_argument("--run", type=int, default=20_000, help="tasks per throughput run")
    parser.add_argument("--repeat", type=int, default=3)
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
