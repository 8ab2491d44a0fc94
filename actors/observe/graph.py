"""The task graph as text: Mermaid (renders on GitHub) or Graphviz DOT, nodes styled by status."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actors.core.task import Task, TaskStatus

__all__ = ["FORMATS", "render"]

# One colour per status (fill, stroke), shared by both formats.
_COLOURS: dict[TaskStatus, tuple[str, str]] = {
    TaskStatus.WAITING: ("#f4f4f4", "#9e9e9e"),
    TaskStatus.PENDING: ("#fff8e1", "#f9a825"),
    TaskStatus.RUNNING: ("#e3f2fd", "#1565c0"),
    TaskStatus.COMPLETED: ("#e8f5e9", "#2e7d32"),
    TaskStatus.FAILED: ("#ffebee", "#c62828"),
    TaskStatus.CANCELLED: ("#eceff1", "#546e7a"),
}

# Characters a Mermaid label shows as they are; every other one is written as an entity
# (``#35;``): quotes, brackets, ``<``, ``&``, backticks and pipes would otherwise end the
# label, turn into HTML or markdown, or break the parse.
_MERMAID_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:/!?+=*@%$~^'"
)


def _mermaid_label(text: str) -> str:
    plain = _MERMAID_PLAIN
    if all(char in plain for char in text):
        return text
    return "".join(char if char in plain else f"#{ord(char)};" for char in text)


def _dot_string(text: str) -> str:
    """A DOT quoted string: backslashes and quotes escaped, line breaks as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return f'"{escaped}"'


def _label(task: Task) -> str:
    """The task's name, and its limit key after an ``@`` if it has one."""
    return task.name if task.limit_key is None else f"{task.name} @{task.limit_key}"


def _mermaid(tasks: Sequence[Task]) -> str:
    node_of = {task.task_id: f"t{n}" for n, task in enumerate(tasks)}
    lines = ["flowchart LR"]
    for task in tasks:
        label = _mermaid_label(_label(task))
        lines.append(f'    {node_of[task.task_id]}["{label}"]:::{task.status.name.lower()}')
    for task in tasks:
        node = node_of[task.task_id]
        for dependency in task.dependencies:
            source = node_of.get(dependency)
            if source is not None:
                lines.append(f"    {source} --> {node}")
    for status, (fill, stroke) in _COLOURS.items():
        lines.append(f"    classDef {status.name.lower()} fill:{fill},stroke:{stroke},color:#000")
    return "\n".join(lines) + "\n"


def _dot(tasks: Sequence[Task]) -> str:
    known = {task.task_id for task in tasks}
    lines = [
        "digraph tasks {",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for task in tasks:
        fill, stroke = _COLOURS[task.status]
        lines.append(
            f"    {_dot_string(task.task_id)} [label={_dot_string(_label(task))}, "
            f'fillcolor="{fill}", color="{stroke}", tooltip="{task.status.name}"];'
        )
    for task in tasks:
        for dependency in task.dependencies:
            if dependency in known:
                lines.append(f"    {_dot_string(dependency)} -> {_dot_string(task.task_id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[Sequence[Task]], str]] = {"mermaid": _mermaid, "dot": _dot}
"""The formats :func:`render` writes, by name."""


def render(tasks: Sequence[Task], format: str) -> str:
    """The graph of ``tasks`` (in the order given) in ``format`` ("mermaid" or "dot").

    One node per task labelled with its name, an edge from each dependency to its
    dependent (a dependency not among ``tasks`` is left out), the node filled by status.
    The text depends only on the tasks: the same graph gives the same text.
    """
    return FORMATS[format](tasks)
