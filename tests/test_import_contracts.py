"""The import contracts of pyproject.toml ([tool.importlinter]), checked by import-linter:
the engine imports none of the web, the core, Celery or Redis; the core no FastAPI, Celery or
TensorFlow; the web neither the worker nor TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
