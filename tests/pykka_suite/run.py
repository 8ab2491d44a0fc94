"""Run pykka's own test suite on HostedActor's runtimes (and pykka's threading one).

    python tests/pykka_suite/run.py [--runtimes pool,loop] [--sdist PATH] [PYTEST_ARGS...]

Fetches the sdist of the installed pykka version (``pip download``; pykka ships its tests
in it) into a temporary directory, unless ``--sdist`` names a downloaded
``pykka-X.Y.Z.tar.gz`` or an unpacked one, and runs its ``tests/`` in a pytest of their
own, with the ``hosted_runtimes`` plugin. Exits with pytest's status.

pykka's tests are a package named ``tests``, as ours are: they run in a separate process
whose working directory is the unpacked sdist, so that ``tests`` is pykka's there.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def download(version: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(into),
            f"pykka=={version}",
        ],
        check=True,
    )
    [sdist] = into.glob(f"pykka-{version}.tar.gz")
    return sdist


def unpack(sdist: Path, into: Path) -> Path:
    """The sdist's root directory (the one holding ``tests/``), unpacked under ``into``."""
    with tarfile.open(sdist) as archive:
        archive.extractall(into, filter="data")
    [root] = (path.parent.parent for path in into.glob("*/tests/conftest.py"))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="threading,pool,loop")
    parser.add_argument("--sdist", type=Path, help="a pykka sdist, packed or unpacked")
    options, pytest_args = parser.parse_known_args(argv)
    version = importlib.metadata.version("pykka")
    with tempfile.TemporaryDirectory(prefix="pykka-suite-") as temp:
        sdist: Path = options.sdist or download(version, Path(temp))
        root = sdist if sdist.is_dir() else unpack(sdist, Path(temp))
        print(f"pykka {version}: running {root / 'tests'} on {options.runtimes}", flush=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "--rootdir",
            str(root),
            "-c",
            str(root / "pyproject.toml"),  # pykka's, with no pytest settings: none of ours
            "-p",
            "hosted_runtimes",
            "-p",
            "no:cacheprovider",
            "--runtimes",
            options.runtimes,
            "--strict-markers",
            "-W",
            "error",
            "-W",  # pykka's tests leave event loops unclosed (tests/test_future.py run_async)
            "ignore::ResourceWarning",
            "-o",
            "timeout=60",
            "-q",
            *pytest_args,
        ]
        return subprocess.run(command, cwd=root, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
