"""``python -m actors inspect tasks.sqlite``: see :mod:`actors.durability.inspect`."""

from __future__ import annotations

from actors.durability.inspect import main

if __name__ == "__main__":
    raise SystemExit(main())
