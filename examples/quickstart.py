"""The README's quick start: tasks with arguments, a dependency, a priority and a retry.

Run it:  python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from actors import TaskManager, TaskPriority, current_task


def download(url: str, *, retries_seen: list[int]) -> str:
    attempt = current_task().attempt
    retries_seen.append(attempt)
    if attempt == 1:
        raise ConnectionError(f"{url}: connection reset")  # the first attempt fails
    return f"<html>{url}</html>"


async def count_words(text: str) -> int:
    await asyncio.sleep(0.01)  # coroutine functions run on the asyncio executor
    return len(text.split("/"))


def report(page_id: str, tm: TaskManager) -> str:
    return f"page {page_id} downloaded as {tm.get_task_result(page_id)!r}"


async def main() -> None:
    attempts: list[int] = []
    async with TaskManager(max_concurrent_tasks=4) as tm:
        page = tm.register_task(
            "download",
            download,
            "https://example.org/a/b",  # the function's positional arguments follow it
            kwargs={"retries_seen": attempts},
            max_retries=2,
            retry_delay=0.05,
            timeout=5.0,
        )
        words = tm.register_task("count", count_words, "a/b/c", priority=TaskPriority.HIGH)
        summary = tm.register_task("report", report, page, tm, dependencies=[page, words])
        print(await tm.execute_task(summary))
        print("words:", await tm.execute_task(words))
        print("download attempts:", attempts)
        print("metrics:", {k: v for k, v in tm.get_metrics().items() if k != "executors"})


if __name__ == "__main__":
    asyncio.run(main())
