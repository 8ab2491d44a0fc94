"""The README's quick start: typed handles, options, a retry, a priority, a result passed on.

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


def report(page: str) -> str:
    return f"downloaded as {page!r}"


async def main() -> None:
    attempts: list[int] = []
    async with TaskManager(max_concurrent_tasks=4) as tm:
        page = tm.options(max_retries=2, retry_delay=0.05, timeout=5.0).submit(
            download, "https://example.org/a/b", retries_seen=attempts
        )  # a TaskHandle[str]: mypy checks the arguments against download's
        words = tm.options(priority=TaskPriority.HIGH).submit(count_words, "a/b/c")
        summary = page.then(report)  # report(page's result), once page completed
        print(await summary)
        print("words:", await words)
        print("download attempts:", attempts)
        print("metrics:", {k: v for k, v in tm.get_metrics().items() if k != "executors"})


if __name__ == "__main__":
    asyncio.run(main())
