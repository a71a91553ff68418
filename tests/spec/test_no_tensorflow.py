"""The lowest layer imports no TensorFlow, NumPy, pydantic or anything of the project above it."""

from __future__ import annotations

import subprocess
import sys


def test_the_plan_and_the_schema_load_only_the_standard_library_and_pillow() -> None:
    code = (
        "import sys, spec.plan, spec.options, spec.pixels\n"
        "heavy = {'tensorflow', 'keras', 'numpy', 'pydantic', 'app', 'core', 'worker'}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
