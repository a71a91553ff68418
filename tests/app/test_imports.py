"""The web app's import rules: no TensorFlow, Keras or worker code in the web process."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_web_app_does_not_import_tensorflow_or_the_worker() -> None:
    code = (
        "import sys, app.main\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'worker'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
