"""The web app's import rules: no TensorFlow or Keras in the web process, and of the worker only the
engine's stdlib-only option schema (core/options.py derives the job options from it) and its
Pillow-only pixel conversion (app/uploads.py re-encodes uploads with it)."""

from __future__ import annotations

import subprocess
import sys

OPTION_SCHEMA = {
    "worker",
    "worker.engine",
    "worker.engine.options",
    "worker.engine.errors",
    "worker.engine.pixels",
}


def test_importing_the_web_app_loads_no_tensorflow_and_only_the_option_schema_of_the_worker() -> None:
    code = (
        "import sys, app.main\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'worker'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(filter(None, result.stdout.strip().split(",")))
    assert loaded <= OPTION_SCHEMA, f"the web imported {sorted(loaded - OPTION_SCHEMA)}"
