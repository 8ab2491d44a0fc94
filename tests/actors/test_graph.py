"""TaskManager.graph: the dependency graph as Mermaid and DOT text, styled by status."""

from __future__ import annotations

import re

import pytest

from actors import TaskManager

from .conftest import WAIT

CLASS_DEFS = """\
    classDef waiting fill:#f4f4f4,stroke:#9e9e9e,color:#000
    classDef pending fill:#fff8e1,stroke:#f9a825,color:#000
    classDef running fill:#e3f2fd,stroke:#1565c0,color:#000
    classDef completed fill:#e8f5e9,stroke:#2e7d32,color:#000
    classDef failed fill:#ffebee,stroke:#c62828,color:#000
    classDef cancelled fill:#eceff1,stroke:#546e7a,color:#000
"""


def noop() -> None:
    return None


def boom() -> None:
    raise ValueError("boom")


def diamond(tm: TaskManager) -> None:
    """fetch -> (parse "a", parse <b>) -> report; names that need escaping in both formats."""
    tm.register_task("fetch", noop, task_id="fetch")
    tm.register_task('parse "a"', noop, task_id="parse-a", dependencies=["fetch"])
    tm.register_task("parse <b> #1", noop, task_id="parse-b", dependencies=["fetch"])
    tm.register_task("report\\all", noop, task_id="report", dependencies=["parse-b", "parse-a"])


def test_mermaid_text_of_a_small_dag(tm: TaskManager) -> None:
    diamond(tm)
    assert tm.graph("mermaid") == (
        "flowchart LR\n"
        '    t0["fetch"]:::pending\n'
        '    t1["parse #34;a#34;"]:::waiting\n'
        '    t2["parse #60;b#62; #35;1"]:::waiting\n'
        '    t3["report#92;all"]:::waiting\n'
        "    t0 --> t1\n"
        "    t0 --> t2\n"
        "    t2 --> t3\n"
        "    t1 --> t3\n" + CLASS_DEFS
    )


def test_dot_text_of_a_small_dag(tm: TaskManager) -> None:
    diamond(tm)
    assert tm.graph("dot") == (
        "digraph tasks {\n"
        "    rankdir=LR;\n"
        '    node [shape=box, style="rounded,filled", fontname="Helvetica"];\n'
        '    "fetch" [label="fetch", fillcolor="#fff8e1", color="#f9a825", tooltip="PENDING"];\n'
        '    "parse-a" [label="parse \\"a\\"", fillcolor="#f4f4f4", color="#9e9e9e", '
        'tooltip="WAITING"];\n'
        '    "parse-b" [label="parse <b> #1", fillcolor="#f4f4f4", color="#9e9e9e", '
        'tooltip="WAITING"];\n'
        '    "report" [label="report\\\\all", fillcolor="#f4f4f4", color="#9e9e9e", '
        'tooltip="WAITING"];\n'
        '    "fetch" -> "parse-a";\n'
        '    "fetch" -> "parse-b";\n'
        '    "parse-b" -> "report";\n'
        '    "parse-a" -> "report";\n'
        "}\n"
    )


def test_a_subset_draws_its_tasks_and_the_edges_between_them(tm: TaskManager) -> None:
    diamond(tm)
    # Given in any order, drawn in registration order.
    text = tm.graph("mermaid", task_ids=["report", "parse-a"])
    assert text.splitlines()[:4] == [
        "flowchart LR",
        '    t0["parse #34;a#34;"]:::waiting',
        '    t1["report#92;all"]:::waiting',
        "    t0 --> t1",
    ]
    assert "-->" not in "".join(text.splitlines()[4:])
    assert '"fetch"' not in tm.graph("dot", task_ids=["parse-b", "report"])


def test_statuses_after_a_run(tm: TaskManager) -> None:
    ok = tm.register_task("ok", noop)
    bad = tm.register_task("bad", boom)
    after_bad = tm.register_task("after bad", noop, dependencies=[bad])
    after_ok = tm.register_task("after ok", noop, dependencies=[ok])
    for task_id in (ok, bad, after_bad, after_ok):
        tm.future(task_id).exception(timeout=WAIT)
    assert tm.graph("mermaid").splitlines()[1:5] == [
        '    t0["ok"]:::completed',
        '    t1["bad"]:::failed',
        '    t2["after bad"]:::failed',
        '    t3["after ok"]:::completed',
    ]
    fills = re.findall(r'label="([^"]+)", fillcolor="([^"]+)"', tm.graph("dot"))
    assert fills == [
        ("ok", "#e8f5e9"),
        ("bad", "#ffebee"),
        ("after bad", "#ffebee"),
        ("after ok", "#e8f5e9"),
    ]


def test_cancelled_and_pending_are_styled_apart(tm: TaskManager) -> None:
    kept = tm.register_task("kept", noop)
    dropped = tm.register_task("dropped", noop)
    assert tm.cancel_task_sync(dropped)
    assert tm.graph("mermaid").splitlines()[1:3] == [
        '    t0["kept"]:::pending',
        '    t1["dropped"]:::cancelled',
    ]
    assert tm.get_task(kept) is not None


def test_unknown_format_and_ids_are_refused(tm: TaskManager) -> None:
    tm.register_task("a", noop, task_id="a")
    with pytest.raises(ValueError, match="format must be one of mermaid, dot, got 'svg'"):
        tm.graph("svg")
    with pytest.raises(TypeError, match="format must be a string, got 3"):
        tm.graph(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown task ids: \['nope'\]"):
        tm.graph("dot", task_ids=["a", "nope"])
    with pytest.raises(TypeError, match="task_ids must be a list of task ids"):
        tm.graph("dot", task_ids="a")


def test_an_empty_manager_draws_an_empty_graph(tm: TaskManager) -> None:
    assert tm.graph("mermaid") == "flowchart LR\n" + CLASS_DEFS
    assert tm.graph("dot").endswith('fontname="Helvetica"];\n}\n')


def test_a_thousand_tasks_draw_the_same_text_twice(tm: TaskManager) -> None:
    previous = tm.register_task("step 0", noop, task_id="s0")
    for n in range(1, 1_000):
        previous = tm.register_task(f"step {n}", noop, task_id=f"s{n}", dependencies=[previous])
    mermaid = tm.graph("mermaid")
    dot = tm.graph("dot")
    assert mermaid == tm.graph("mermaid")
    assert dot == tm.graph("dot")
    assert mermaid.count(" --> ") == 999
    assert dot.count(" -> ") == 999
    assert '    t999["step 999"]:::waiting' in mermaid
