"""The task graph drawn as SVG on the server: no renderer in the page, nothing from a CDN.

A layered drawing, kept simple: a task's column is the length of the longest chain of
dependencies before it (among the tasks drawn), tasks in a column in registration order,
an edge a curve from a dependency's right side to its dependent's left side.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.dashboard._views import Row

__all__ = ["draw"]

_WIDTH, _HEIGHT = 170, 34  # a node
_GAP_X, _GAP_Y = 60, 14
_MARGIN = 10


def _label(text: str, most: int = 22) -> str:
    return escape(text if len(text) <= most else text[: most - 1] + "…")


def draw(rows: Sequence[Row], focus: str | None = None) -> str:
    """An ``<svg>`` element with one node per row (a link to its page, classed by status:
    the page's CSS colours it) and an edge per dependency among them."""
    index = {r.task_id: n for n, r in enumerate(rows)}
    column = [0] * len(rows)
    for n, r in enumerate(rows):  # registration order: a dependency comes before
        before = [column[index[d]] + 1 for d in r.dependencies if index.get(d, n) < n]
        column[n] = max(before, default=0)
    placed: dict[int, int] = {}
    where = []
    for n in range(len(rows)):
        place = placed.get(column[n], 0)
        placed[column[n]] = place + 1
        where.append(
            (_MARGIN + column[n] * (_WIDTH + _GAP_X), _MARGIN + place * (_HEIGHT + _GAP_Y))
        )
    width = _MARGIN * 2 + (max(column, default=0) + 1) * (_WIDTH + _GAP_X) - _GAP_X
    height = _MARGIN * 2 + max(placed.values(), default=1) * (_HEIGHT + _GAP_Y) - _GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" class="arrowhead"/>'
        "</marker></defs>",
    ]
    for n, r in enumerate(rows):
        x2, y2 = where[n]
        for dependency in r.dependencies:
            source = index.get(dependency)
            if source is None:
                continue
            x1, y1 = where[source]
            x1, y1m, y2m = x1 + _WIDTH, y1 + _HEIGHT // 2, y2 + _HEIGHT // 2
            bend = (x2 - x1) // 2
            parts.append(
                f'<path class="edge" marker-end="url(#arrow)" d="M{x1},{y1m} '
                f'C{x1 + bend},{y1m} {x2 - bend},{y2m} {x2},{y2m}"/>'
            )
    for n, r in enumerate(rows):
        x, y = where[n]
        chosen = " focus" if r.task_id == focus else ""
        parts.append(
            f'<a href="#/task/{escape(r.task_id)}" class="node {r.status.name.lower()}{chosen}" '
            f'data-task="{escape(r.task_id)}"><title>{escape(r.name)} ({r.status.name})</title>'
            f'<rect x="{x}" y="{y}" width="{_WIDTH}" height="{_HEIGHT}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 21}">{_label(r.name)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
