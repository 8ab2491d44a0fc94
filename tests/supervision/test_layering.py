"""The layering rule: supervision works for any pykka actor and never imports actors."""

from __future__ import annotations

import subprocess
import sys

import supervision


def test_supervision_does_not_import_actors() -> None:
    code = (
        "import sys, supervision; print(sorted(m for m in sys.modules if m.startswith('actors')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_all_is_sorted_and_complete() -> None:
    assert supervision.__all__ == sorted(supervision.__all__)
    assert all(hasattr(supervision, name) for name in supervision.__all__)


def test_the_library_is_silent_by_default() -> None:
    code = (
        "import pykka, supervision\n"
        "class W(pykka.ThreadingActor):\n"
        "    def on_receive(self, m): raise RuntimeError('x')\n"
        "ref = supervision.Supervisor.start(supervision.SupervisorSpec(\n"
        "    max_restarts=0, children=[supervision.ChildSpec('w', W)]))\n"
        "ref.proxy().which_children().get()[0].ref.tell('crash')\n"
        "ref.actor_stopped.wait(5)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert (out.stdout, out.stderr) == ("", "")
