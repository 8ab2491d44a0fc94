"""A small supervised service started from a TOML tree: parsers crash, supervisors restart them.

Run it:  python examples/supervised_service.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pykka
import structlog

from supervision import ChildInfo, RestartIntensityExceeded, Supervisor, tree_from_config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # so that the tree's "service_actors:Cache" imports

DOCUMENTS = [
    (f"doc-{n}", "corrupt bytes" if n % 7 == 3 else f"page {n} about actors and trees")
    for n in range(1, 25)
]


def show_supervision(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    """Render the supervisor's events as one readable line each."""
    name = event.pop("event")
    where = event.pop("supervisor", "")
    event.pop("component", None)
    event.pop("level", None)
    if name == "supervisor.restart":
        return (
            f"  [{where}] restart {event['child']} (attempt {event['attempt']}, "
            f"in {event['delay']:.2f}s) after {event['error']}"
        )
    if name == "supervisor.child_failed":
        return f"  [{where}] {event['child']} failed: {event['error']}"
    details = " ".join(f"{k}={v}" for k, v in event.items() if k != "actor")
    return f"  [{where}] {name.removeprefix('supervisor.')} {details}"


def running_child(supervisor: pykka.ActorRef[Supervisor], child_id: str) -> pykka.ActorRef[Any]:
    """The child's current ref, waiting out a restart that its backoff delays."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children: list[ChildInfo] = supervisor.proxy().which_children().get(timeout=5)
        for child in children:
            if child.id == child_id and child.alive and child.ref is not None:
                return child.ref
        time.sleep(0.01)
    raise TimeoutError(f"{child_id} did not come back")


def main() -> int:
    structlog.configure(
        processors=[structlog.processors.add_log_level, show_supervision],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
    )
    spec = tree_from_config(HERE / "service_tree.toml")
    escalations: list[RestartIntensityExceeded] = []
    root = Supervisor.start(spec, name="service", on_escalate=escalations.append)
    print("service started:", [c.id for c in root.proxy().which_children().get(timeout=5)])
    parsers = next(c.ref for c in root.proxy().which_children().get() if c.id == "parsers")
    assert parsers is not None
    try:
        parsed = crashed = 0
        for n, (doc_id, text) in enumerate(DOCUMENTS):
            parser = running_child(parsers, "parser-1" if n % 2 else "parser-2")
            if "corrupt" in text:
                # A told message that raises crashes the parser; its supervisor restarts it.
                print(f"{doc_id}: sending a corrupt document to {parser.actor_class.__name__}")
                parser.tell((doc_id, text))
                crashed += 1
            else:
                # An asked call that raised would come back here, and the parser lives on.
                parser.ask((doc_id, text), timeout=5)
                parsed += 1
        cache = next(c.ref for c in root.proxy().which_children().get() if c.id == "cache")
        assert cache is not None
        print(f"parsed {parsed} documents, {crashed} crashed a parser")
        print(f"cache holds {cache.proxy().size().get(timeout=5)} summaries")
        print("children at the end:", root.proxy().count_children().get(timeout=5))
    finally:
        root.stop()
    print("service stopped" + (f" after escalation: {escalations[0]}" if escalations else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
