"""An asyncio crawler that embeds the task manager in its own event loop.

Run it:  python examples/crawler.py

It crawls an in-memory site (no network): every fetch is a coroutine task, and all of
them share what a real crawler shares: one HTTP-client-like object and one
``asyncio.Semaphore``, both made on the application's loop, where the tasks run too. Each
crawl round has a request id in a context variable, bound through structlog: every log
line of every task carries it. Results are read with ``as_completed`` as they come. The
crawler is polite: each fetch has its host as its limit key, and ``tm.limit`` allows each
host 2 requests at once and 20 per second (4 at once after a pause). Then a schedule
re-crawls the home page every RECRAWL_EVERY seconds (a few times here).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys

import structlog

from actors import TaskManager

SITE: dict[str, tuple[str, list[str]]] = {
    "/": ("Home of the example site", ["/news", "/about", "/blog"]),
    "/news": ("Today's news, in brief", ["/news/1", "/news/2", "/"]),
    "/news/1": ("A first story about actors", ["/news"]),
    "/news/2": ("A second story about supervision", ["/news", "/blog/2"]),
    "/about": ("About this site and its authors", ["/"]),
    "/blog": ("The blog's front page", ["/blog/1", "/blog/2"]),
    "/blog/1": ("Notes on event loops", ["/blog"]),
    "/blog/2": ("Notes on context variables", ["/blog", "/about"]),
}

HOST = "example.org"

round_id: contextvars.ContextVar[str] = contextvars.ContextVar("round_id")

RECRAWL_EVERY = 0.2  # seconds between re-crawls (a real crawler: minutes or hours)


class Client:
    """Stands in for an aiohttp session: one per application, made on its loop.

    Its lock and its semaphore belong to the loop they were made on; a task run on any
    other loop could not use them.
    """

    def __init__(self, concurrency: int) -> None:
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(concurrency)
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def get(self, path: str) -> tuple[str, list[str]]:
        async with self.slots:
            async with self.lock:
                self.requests += 1
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.01)  # the network
                return SITE[path]
            finally:
                async with self.lock:
                    self.in_flight -= 1


async def fetch(client: Client, path: str) -> tuple[str, list[str]]:
    log = structlog.get_logger("crawler")
    text, links = await client.get(path)
    log.info("fetched", path=path, words=len(text.split()))
    return text, links


async def recrawl(client: Client, path: str, fresh: asyncio.Queue[str]) -> None:
    """A scheduled run: fetch ``path`` again and hand its text to the crawler."""
    text, _links = await client.get(path)
    structlog.get_logger("crawler").info("refetched", path=path)
    fresh.put_nowait(text)


async def crawl(start: str) -> None:
    client = Client(concurrency=3)
    seen = {start}
    frontier = [start]
    pages: dict[str, str] = {}
    async with TaskManager(max_concurrent_tasks=8) as tm:
        tm.limit(HOST, concurrency=2, rate="20/s", burst=4)  # per host: politeness
        for number in range(1, 10):
            if not frontier:
                break
            round_id.set(f"round-{number}")
            structlog.contextvars.bind_contextvars(request_id=round_id.get())
            ids = {
                tm.register_task(f"fetch {path}", fetch, client, path, limit_key=HOST): path
                for path in frontier
            }
            structlog.contextvars.unbind_contextvars("request_id")
            frontier = []
            async for task_id in tm.as_completed(ids):
                text, links = await tm.execute_task(task_id)
                pages[ids[task_id]] = text
                for link in links:
                    if link not in seen:
                        seen.add(link)
                        frontier.append(link)
            print(f"round {number}: {len(ids)} pages, {len(pages)} in all")
        print(f"crawled {len(pages)} pages with {client.requests} requests through one client")
        print(
            f"at most {client.most_in_flight} requests in flight to {HOST} (its limit is 2; "
            "the shared semaphore allows 3)"
        )
        # Keep the home page fresh: each run of the schedule is a task like the others.
        fresh: asyncio.Queue[str] = asyncio.Queue()
        schedule = tm.schedule(
            f"recrawl {start}", recrawl, client, start, fresh, every=RECRAWL_EVERY
        )
        texts = [await fresh.get() for _ in range(3)]
        tm.unschedule(schedule)
        print(f"re-crawled {start} {len(texts)} times, every {RECRAWL_EVERY} s")


def main() -> int:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.KeyValueRenderer(
                key_order=["request_id", "event", "path"], drop_missing=True
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    asyncio.run(crawl("/"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
