"""``python -m actors inspect tasks.sqlite``: see :mod:`actors.durability.inspect`;
``python -m actors dashboard tasks.sqlite``: see :mod:`actors.dashboard.cli`."""

from __future__ import annotations

import sys

from actors.durability.inspect import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["dashboard"]:
        from actors.dashboard.cli import main as dashboard

        raise SystemExit(dashboard(sys.argv[2:]))
    raise SystemExit(main())
