"""Print the requirements of the project and of the named extras, one a line, from pyproject.toml.

The Dockerfile installs these (with `-c constraints.txt`) before it copies the source, so the
dependency layer is rebuilt only when pyproject.toml or constraints.txt change.
Usage: python requirements.py PYPROJECT EXTRA [EXTRA ...]
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The core dependencies followed by those of each extra, without duplicates, in order."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    found = list(project.get("dependencies", []))
    for extra in extras:
        found.extend(optional[extra])
    return list(dict.fromkeys(found))


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    sys.stdout.write("".join(f"{line}\n" for line in requirements(Path(argv[0]), argv[1:])))


if __name__ == "__main__":
    main(sys.argv[1:])
