"""The demo pipeline, seen run: its trace as a tree of spans, its graph, its events as JSON lines.

Run it:  python examples/observe.py [--out DIR]     (needs the otel extra:
         pip install -e '.[examples,otel]')

The pipeline of ``examples/pipeline.py`` (fetch -> extract -> summarize per page, then a
report) runs with:

- ``actors.otel.ActorsInstrumentor`` on: each attempt is a span ``task <name>`` under the
  span that was current when the task was registered (here, one ``crawl`` span), with its
  retries as span events and its failures as errors. The spans go to OpenTelemetry's
  in-memory exporter and are printed as a tree; a service would export them (OTLP) to the
  tracing tool it already runs.
- a ``JsonLinesEventLog`` actor under the system's supervisor, writing every task event to
  ``DIR/events.jsonl``;
- the task graph, nodes coloured by status, written as Mermaid to ``DIR/pipeline.mmd``.

DIR is a new temporary directory unless ``--out`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from actors import ActorSystem, JsonLinesEventLog
from actors.otel import ActorsInstrumentor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the pipeline example, next to this one

import pipeline  # noqa: E402


def span_line(span: ReadableSpan) -> str:
    """One span: its name, duration, attempt, and what went wrong."""
    seconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    text = f"{span.name}  {seconds:.2f}s"
    attributes = span.attributes or {}
    if "task.attempt" in attributes:
        text += "  attempt " + str(attributes["task.attempt"])
    if span.status.status_code is StatusCode.ERROR:
        text += f"  ERROR {span.status.description}"
    for event in span.events:
        if event.name == "retry":
            delay = (event.attributes or {}).get("task.retry_delay")
            text += f" (retry in {delay}s)"
    return text


def span_tree(spans: list[ReadableSpan]) -> list[str]:
    """The spans as a tree (children under their parent, in start order)."""
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(span)
    lines: list[str] = []

    def draw(span: ReadableSpan, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{span_line(span)}")
        below = children.get(span.context.span_id if span.context else None, [])
        inner = prefix if root else prefix + ("   " if last else "│  ")
        for n, child in enumerate(below):
            draw(child, inner, n == len(below) - 1, False)

    for top in children.get(None, []):
        draw(top, "", True, True)
    return lines


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="where to write the graph and the event log")
    options = parser.parse_args(argv)
    out: Path = options.out or Path(tempfile.mkdtemp(prefix="actors-observe-"))
    out.mkdir(parents=True, exist_ok=True)
    events_path, graph_path = out / "events.jsonl", out / "pipeline.mmd"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ActorsInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("observe")

    # The system first (its scheduler starts paused), then the log, then the tasks: the
    # log is subscribed before the first task starts.
    system = ActorSystem(max_concurrent_tasks=4)
    try:
        system.spawn(JsonLinesEventLog, events_path, name="event-log")
        tm = system.task_manager
        with tracer.start_as_current_span("crawl example.org"):
            _fetches, summaries = pipeline.register_pipeline(tm)
            async with tm:
                await pipeline.crawl(tm, summaries, pipeline.StatusLine(tm, enabled=False))
                graph_path.write_text(tm.graph("mermaid"), encoding="utf-8")
    finally:
        system.shutdown()  # stops the log: its last lines are written and the file closed
        ActorsInstrumentor().uninstrument()

    spans = list(exporter.get_finished_spans())
    tasks = [span for span in spans if span.name.startswith("task ")]
    failed = sum(span.status.status_code is StatusCode.ERROR for span in tasks)
    traces = len({span.context.trace_id for span in tasks if span.context is not None})
    where = "one trace" if traces == 1 else f"{traces} traces"
    print(f"Trace: {len(tasks)} attempts in {where}, {failed} of them failed")
    for line in span_tree(spans):
        print(f"  {line}")

    graph = graph_path.read_text(encoding="utf-8")
    print(f"\nGraph: {graph_path} ({graph.count(' --> ')} edges)")
    print(graph, end="")

    records = [json.loads(line) for line in events_path.read_text(encoding="utf-8").splitlines()]
    kinds = Counter(record["kind"] for record in records)
    print(f"\nEvents: {events_path} ({len(records)} lines)")
    print("  " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    for record in records:
        if record["task_name"] == f"fetch {pipeline.FLAKY}" and record["kind"] != "progress":
            print(f"  {json.dumps(record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
