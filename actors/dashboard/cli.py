"""``python -m actors dashboard tasks.sqlite``: a read-only dashboard of a journal file."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from actors.errors import JournalError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *, ready: threading.Event | None = None) -> int:
    """Serve the journal's dashboard until interrupted (Ctrl-C); 2 for a file that is not
    a journal. ``ready`` (for tests) is set once it listens; the URL is printed then."""
    parser = argparse.ArgumentParser(
        prog="python -m actors dashboard",
        description="Serve a read-only dashboard of a journal (safe while a manager runs on it).",
    )
    parser.add_argument("journal", help="the journal's path (an SQLite file)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8265, help="the port (0: any free one)")
    options = parser.parse_args(argv)
    try:
        from actors.dashboard import journal_app, serve
    except ImportError as missing:
        print(f"python -m actors dashboard: {missing}", file=sys.stderr)
        return 2
    try:
        served = serve(journal_app(options.journal), options.host, options.port)
    except JournalError as error:
        print(f"python -m actors dashboard: {error}", file=sys.stderr)
        return 2
    print(f"dashboard of {options.journal} at {served.url} (Ctrl-C stops it)", flush=True)
    if ready is not None:
        ready.set()
    try:
        served._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        served.close()
    return 0
