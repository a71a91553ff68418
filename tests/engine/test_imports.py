"""The engine's import rules (docs/architecture.md), checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import worker.cli, worker.engine.images, spec.options
assert "tensorflow" not in sys.modules, "checking files and options must not load TensorFlow"
from worker.engine import load_extractor, stylize
from spec.options import StyleOptions
import worker.engine.model, worker.engine.optimize
assert "tensorflow" in sys.modules
loaded = sorted(name for name in ("celery", "fastapi", "redis", "app", "core") if name in sys.modules)
assert not loaded, f"the engine imported {loaded}"
"""


def test_engine_imports_no_web_queue_or_redis_and_loads_tensorflow_lazily() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


CLI_WITHOUT_TENSORFLOW = """
import sys
from worker.cli import main
bad = ["stylize", "c.png", "s.png", "-o", "o.png", "--iterations", "0"]
for argv in (["--help"], ["stylize", "--help"], bad):
    try:
        main(argv)
    except SystemExit:
        pass
assert "tensorflow" not in sys.modules, "the CLI's help and usage errors must not load TensorFlow"
"""


def test_cli_help_and_usage_errors_do_not_load_tensorflow() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITHOUT_TENSORFLOW], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
