"""Strict type check of the package as it is installed: ``patter`` with ``patter.processors``
and ``patter.transports`` mapped from the top-level folders.

mypy reads source folders, and knows nothing of setuptools' ``package-dir`` mapping (nor of
the import hook an editable install uses for it), so ``import patter.processors`` would not
resolve in a plain ``mypy patter processors transports``. This lays the package out once,
as the wheel does, in a temporary folder of symbolic links, and checks that with the
settings in pyproject.toml. Run it with ``make lint``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def lay_out_package(target: Path) -> Path:
    """Link each mapped package folder of pyproject.toml into ``target`` as it sits in a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    top = target / "patter"
    top.mkdir()
    source = ROOT / mapping["patter"]
    for entry in source.iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        if package != "patter":
            (target / package.replace(".", "/")).symlink_to(ROOT / folder)
    return top


def main() -> int:
    """Run mypy (strict, settings from pyproject.toml) over the laid-out package."""
    with tempfile.TemporaryDirectory(prefix="patter-typecheck-") as folder:
        lay_out_package(Path(folder))
        here = Path.cwd()
        os.chdir(folder)  # mypy finds ``-p patter`` from the working directory
        try:
            stdout, stderr, status = api.run(
                ["--config-file", str(ROOT / "pyproject.toml"),
                 "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "patter"]
            )
        finally:
            os.chdir(here)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
