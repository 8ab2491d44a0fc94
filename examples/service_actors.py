"""The actors of the supervised-service example: plain pykka actors, no mixin."""

from __future__ import annotations

from typing import Any

import pykka


class Cache(pykka.ThreadingActor):
    """Keeps parsed documents; its contents die with it (the supervisor restarts it empty)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.entries: dict[str, str] = {}

    def put(self, key: str, value: str) -> None:
        if len(self.entries) >= self.capacity:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = value

    def size(self) -> int:
        return len(self.entries)


class Parser(pykka.ThreadingActor):
    """Parses documents into the cache; a corrupt document told to it crashes it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.parsed = 0

    def on_start(self) -> None:
        self.cache = pykka.ActorRegistry.get_by_class(Cache)[0].proxy()

    def parse(self, doc_id: str, text: str) -> str:
        if "corrupt" in text:
            raise ValueError(f"corrupt document {doc_id}")
        summary = " ".join(text.split()[:3]).upper()
        self.cache.put(doc_id, summary).get(timeout=5)
        self.parsed += 1
        return summary

    def on_receive(self, message: Any) -> Any:
        doc_id, text = message
        return self.parse(doc_id, text)
