"""The dashboard in a real headless browser (the system's Chromium, driven by Playwright):
the page lists the tasks, a status changes on screen without a reload, the graph is
drawn, cancel from the page cancels. Each page's screenshot goes to docs/images/ (the
dashboard guide shows them; CI keeps them as artifacts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import TaskCancellationError, TaskManager, TaskStatus
from actors.dashboard import serve

from .conftest import WAIT
from .test_dashboard import GATES, add, blocked_until_cancelled, explode, gated

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Where the pages' screenshots go: docs/images when CI asks (ACTORS_SCREENSHOTS=1, which
# keeps them as artifacts and refreshes the guide's pictures), else a temporary folder, so
# a developer's run leaves the checkout as it was.
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MS = int(WAIT * 1000)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="no chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_the_page_lists_updates_draws_and_cancels(browser: Any, tmp_path: Path) -> None:
    IMAGES = DOCS_IMAGES if os.environ.get("ACTORS_SCREENSHOTS") == "1" else tmp_path  # noqa: N806
    GATES["page"] = threading.Event()
    GATES["cancel"] = threading.Event()
    tm = TaskManager(resources={"gpu": 2})
    tm.start_sync()
    tm.limit("example.org", concurrency=4, rate="10/s")
    try:
        fetch = tm.register_task("fetch", add, 1, 2, tags=["io"])
        parse = tm.register_task("parse", add, 3, 4, dependencies=[fetch])
        tm.register_task("store", add, 5, 6, dependencies=[parse], tags=["db"])
        broken = tm.register_task("report", explode, "no printer", dependencies=[parse])
        slow = tm.register_task(
            "crawl", gated, "page", tags=["io"], limit_key="example.org", resources={"gpu": 1}
        )
        blocked = tm.register_task("archive", blocked_until_cancelled)
        tm.future(parse).result(WAIT)
        with pytest.raises(Exception, match="no printer"):
            tm.future(broken).result(WAIT)
        with serve(tm) as served:
            page = browser.new_page(viewport={"width": 1200, "height": 640})
            page.goto(served.url, timeout=MS)
            crawl = page.locator(f'tr[data-task="{slow}"]')
            crawl.locator(".status", has_text="running").wait_for(timeout=MS)
            for name in ("fetch", "parse", "store", "report", "archive"):
                assert page.locator("#tasks td", has_text=name).count() >= 1
            page.locator("#live.on").wait_for(timeout=MS)  # the event stream is open
            page.evaluate("window.notReloaded = true")
            IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(IMAGES / "dashboard-tasks.png"))

            GATES["page"].set()  # the task ends: its row says so, through the events
            crawl.locator(".status", has_text="completed").wait_for(timeout=MS)
            assert page.evaluate("window.notReloaded") is True
            assert tm.get_task_status(slow) is TaskStatus.COMPLETED

            page.goto(f"{served.url}#/graph", timeout=MS)
            page.locator("svg.graph a.node").first.wait_for(timeout=MS)
            assert page.locator("svg.graph a.node").count() == 6
            assert page.locator("svg.graph path.edge").count() == 3
            assert page.locator(f'svg.graph a.node.failed[data-task="{broken}"]').count() == 1
            page.screenshot(path=str(IMAGES / "dashboard-graph.png"))

            page.goto(f"{served.url}#/task/{broken}", timeout=MS)
            page.locator("pre", has_text="ValueError: no printer").wait_for(timeout=MS)
            page.screenshot(path=str(IMAGES / "dashboard-task.png"), full_page=True)

            page.goto(f"{served.url}#/task/{blocked}", timeout=MS)
            page.locator("#cancel").click(timeout=MS)
            with pytest.raises(TaskCancellationError):
                tm.future(blocked).result(WAIT)
            page.locator("h2 .status", has_text="cancelled").wait_for(timeout=MS)

            schedule_id = tm.schedule("nightly report", add, 1, 1, every=86_400)
            page.goto(f"{served.url}#/schedules", timeout=MS)
            page.reload(timeout=MS)  # the Schedules tab shows once the manager has one
            page.locator(f'button[data-schedule="{schedule_id}"]', has_text="Pause").click(
                timeout=MS
            )
            page.locator(f'button[data-schedule="{schedule_id}"]', has_text="Resume").wait_for(
                timeout=MS
            )
            assert [s.paused for s in tm.schedules()] == [True]
            page.screenshot(path=str(IMAGES / "dashboard-schedules.png"))

            page.goto(f"{served.url}#/executors", timeout=MS)
            page.locator("#executors td", has_text="thread_pool").first.wait_for(timeout=MS)
            page.locator("#limits td", has_text="example.org").wait_for(timeout=MS)
            page.locator("#resources td", has_text="gpu").wait_for(timeout=MS)
            page.screenshot(path=str(IMAGES / "dashboard-executors.png"))
            page.goto(f"{served.url}#/supervision", timeout=MS)
            page.locator("#supervision", has_text="scheduler").wait_for(timeout=MS)
            page.screenshot(path=str(IMAGES / "dashboard-supervision.png"))
            page.close()
    finally:
        for gate in GATES.values():
            gate.set()
        GATES.clear()
        tm.stop_sync()


def test_the_benchmark_prints_its_numbers() -> None:
    """examples/dashboard_bench.py, small: first paint and the three throughput modes."""
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [
            *(sys.executable, "examples/dashboard_bench.py", "--tasks", "300", "--run", "300"),
            *("--repeat", "1", "--chromium", CHROMIUM),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=WAIT * 10,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert 0 < result["first_paint"]["table_ms"] < 10_000
    assert set(result["throughput"]["tasks_per_s"]) == {"none", "blank", "dashboard"}
    assert all(cpu > 0 for cpu in result["throughput"]["cpu_us_per_task"].values())
