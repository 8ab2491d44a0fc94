"""Mistakes mypy --strict must report: each line's ignore names the error it expects, and
strict mode's warn_unused_ignores fails the run if the error is not reported (pyright: the
setting below)."""
# pyright: reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

from actors import TaskHandle, TaskManager


def parse(page: str, *, strict: bool = False) -> int:
    return len(page)


async def fetch(url: str) -> str:
    return url


def checks(tm: TaskManager) -> None:
    tm.submit(parse, 42)  # type: ignore[call-overload]
    tm.submit(parse, "<p>", strict="yes")  # type: ignore[arg-type]
    tm.submit(parse, "<p>", "extra")  # type: ignore[call-overload]
    tm.submit(parse, "<p>", loose=True)  # type: ignore[call-arg, arg-type]
    tm.submit(fetch)  # type: ignore[call-overload]
    text: str = tm.submit(parse, "<p>").result()  # type: ignore[assignment]
    handle: TaskHandle[str] = tm.submit(parse, "<p>")  # type: ignore[call-overload]
    tm.map(parse, [1, 2])  # type: ignore[arg-type]
    tm.options(priority="high")  # type: ignore[arg-type]
    tm.options(timeout_s=3)  # type: ignore[call-arg]
    tm.submit(parse, "<p>").then(fetch)  # type: ignore[arg-type]
    del text, handle
