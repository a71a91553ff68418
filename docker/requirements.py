"""The requirements of the project and of the named extras, from pyproject.toml; and its console scripts.

python requirements.py PYPROJECT EXTRA [EXTRA ...]
    prints the requirements, one a line. The Dockerfile installs these (with `-c constraints.txt`) before
    it copies the source, so the dependency layer is rebuilt only when pyproject.toml or constraints.txt
    change.
python requirements.py --scripts BINDIR PYPROJECT NAME [NAME ...]
    writes the named [project.scripts] entries into BINDIR as small launchers, as `pip install` of the
    project would, without installing the project: the images run the code from /app (PYTHONPATH), so no
    build backend has to be downloaded at build time and pip can leave the final images.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def _project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The core dependencies followed by those of each extra, without duplicates, in order."""
    project = _project(pyproject)
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    found = list(project.get("dependencies", []))
    for extra in extras:
        found.extend(optional[extra])
    return list(dict.fromkeys(found))


def write_scripts(bin_dir: Path, pyproject: Path, names: list[str]) -> list[Path]:
    """One launcher per named console script ("module:function"), run by the Python that runs this."""
    scripts = _project(pyproject).get("scripts", {})
    unknown = [name for name in names if name not in scripts]
    if unknown:
        raise SystemExit(f"unknown scripts {unknown}; pyproject.toml has {sorted(scripts)}")
    written = []
    for name in names:
        module, _, function = scripts[name].partition(":")
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\n\nfrom {module} import {function}\n\nsys.exit({function}())\n",
            encoding="utf-8",
        )
        path.chmod(0o755)
        written.append(path)
    return written


def main(argv: list[str]) -> None:
    if argv[:1] == ["--scripts"] and len(argv) >= 4:
        write_scripts(Path(argv[1]), Path(argv[2]), argv[3:])
    elif len(argv) >= 2 and not argv[0].startswith("-"):
        sys.stdout.write("".join(f"{line}\n" for line in requirements(Path(argv[0]), argv[1:])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
