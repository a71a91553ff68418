"""The web app's import rules: no TensorFlow or Keras in the web process, and nothing of the worker
(the option schema, the run plan and the pixel conversion it shares with the worker live in spec/)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_web_app_loads_no_tensorflow_and_nothing_of_the_worker() -> None:
    code = (
        "import sys, app.main\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'worker'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(filter(None, result.stdout.strip().split(",")))
    assert not loaded, f"the web imported {sorted(loaded)}"
