"""``python -m actors inspect tasks.sqlite``: see :mod:`actors.durability.inspect`;
``python -m actors dashboard tasks.sqlite``: see :mod:`actors.dashboard.cli`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: python -m actors {inspect,dashboard} JOURNAL [options]

commands:
  inspect JOURNAL     list a journal's tasks (read-only: safe while a manager runs)
  dashboard JOURNAL   serve a read-only dashboard of a journal (the dashboard extra)

python -m actors COMMAND --help shows a command's options."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; its exit status (2 for a command line that names none)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else None
    if command == "dashboard":
        from actors.dashboard.cli import main as dashboard

        return dashboard(args[1:])
    if command == "inspect":
        from actors.durability.inspect import main as inspect

        return inspect(args)
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    told = "" if command is None else f"python -m actors: no command {command!r}\n"
    print(f"{told}{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
