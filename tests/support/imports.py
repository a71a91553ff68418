"""Which modules an import loads, seen from a fresh interpreter (no test's imports in the way)."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(imports: str, roots: set[str]) -> set[str]:
    """The modules under ``roots`` (top-level names) that ``import {imports}`` loads in a new process."""
    code = (
        f"import sys, {imports}\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(roots)!r})))\n"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return set(filter(None, result.stdout.strip().split(",")))
