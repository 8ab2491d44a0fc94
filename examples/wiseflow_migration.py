"""WiseFlow's old task-manager calls, run unchanged on the unified system, then migrated.

Run it:  python examples/wiseflow_migration.py

1. The old ThreadPoolManager from a plain thread (no event loop).
2. The old run_task job: process a focus point over its sites, then generate insights,
   with the helper from actors.compat.run_task, plus a periodic re-run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import warnings
from typing import Any

from actors import TaskManager, current_task
from actors.compat.run_task import process_focus, schedule_periodic
from actors.compat.thread_pool_manager import ThreadPoolManager

SITES = {
    "news.example": "Actors and supervision trees in production.",
    "blog.example": "Retries with backoff; timeouts per attempt.",
    "flaky.example": "Sometimes the network says no.",
}


def old_thread_pool_code() -> None:
    pool = ThreadPoolManager(max_workers=2)
    ids = [pool.submit(len, text, name=f"measure {site}") for site, text in SITES.items()]
    results = [pool.future(task_id).result(timeout=5) for task_id in ids]
    print("ThreadPoolManager results (from a plain thread):", results)
    print("ThreadPoolManager metrics:", pool.get_metrics())
    pool.shutdown(wait=True)


async def process_site(focus_id: str, site: str) -> dict[str, Any]:
    if site == "flaky.example" and current_task().attempt == 1:
        raise ConnectionError(f"{site}: connection reset")
    await asyncio.sleep(0.01)
    return {"site": site, "words": len(SITES[site].split()), "focus": focus_id}


def generate_insights(focus_id: str, results: dict[str, dict[str, Any]]) -> str:
    words = sum(r["words"] for r in results.values())
    return f"focus {focus_id!r}: {len(results)} sites, {words} words"


async def run_focus() -> None:
    async with TaskManager(max_concurrent_tasks=4) as tm:
        run = await process_focus(
            tm, "actors", list(SITES), process_site, generate_insights, retry_delay=0.01
        )
        print("insights:", run.insights)
        for site, error in run.errors.items():
            print(f"  {site} failed: {error}")
        flaky = tm.get_tasks_by_tag("focus:actors")[2]
        print(f"  {flaky.name}: {flaky.status.name} after {flaky.attempt} attempts")

        ticks: queue.Queue[int] = queue.Queue()
        periodic = schedule_periodic(tm, "refresh", 0.05, lambda: ticks.put(1))
        for _ in range(3):
            await asyncio.get_running_loop().run_in_executor(None, ticks.get, True, 5)
        periodic.cancel()
        print(f"periodic refresh ran {periodic.runs} times, then was cancelled")


def main() -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        worker = threading.Thread(target=old_thread_pool_code)
        worker.start()
        worker.join()
    for warning in caught:
        print("warning:", warning.message)
    asyncio.run(run_focus())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
