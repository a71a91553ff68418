"""The ``atelier`` command for tests, in this process or as a user's process; both answer as
subprocess.run does (returncode, stdout, stderr).

    done = atelier("stylize", content, style, "-o", out, cwd=tmp_path)          # main(argv) here
    done = atelier_process("stylize", content, style, "-o", out, cwd=tmp_path)  # the console script

A process costs ~5 CPU-s before its first step (TensorFlow's import, the extractor, the first
trace): tests use it where only a process shows the behaviour (the console script, the exit status
and the one line on stderr once TensorFlow has loaded), and main() in this process elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.inprocess import restore_environment

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("atelier")  # the console script pip installs from pyproject.toml


@dataclass(frozen=True)
class Done:
    """What a run of the command left: its exit status and everything it wrote."""

    returncode: int
    stdout: str
    stderr: str


def _environment(cwd: Path, env: dict[str, str] | None) -> dict[str, str]:
    # Never the shared data/ directory for weights, whichever way the command runs.
    return {"ATELIER_MODEL_DIR": str(cwd / "models"), **(env or {})}


def atelier_process(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """The command as a user runs it: the console script in a process of its own."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "worker.cli"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), **_environment(cwd, env)}
    done = subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )
    return Done(done.returncode, done.stdout, done.stderr)


def atelier(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """worker.cli.main(args) in this process, in cwd with env's variables, as a process would see
    them: its own settings, logging set up by main() (its lines on stderr), its own Ctrl-C handler;
    all of it put back afterwards. Output that C++ libraries write to file descriptors 1 and 2 is
    not caught: atelier_process's tests cover that."""
    from core.settings import get_settings
    from worker.cli import main

    restore_environment()  # no in-process web's settings
    saved_environment, saved_cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_sigint = signal.getsignal(signal.SIGINT)
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.update(_environment(cwd, env))
    os.chdir(cwd)
    get_settings.cache_clear()
    root.handlers = []  # pytest's capture handlers would make main()'s logging.basicConfig a no-op
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main([str(arg) for arg in args])
            except SystemExit as exit:  # argparse's usage errors and --help
                code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = saved_handlers, saved_level
        signal.signal(signal.SIGINT, saved_sigint)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environment)
        get_settings.cache_clear()
    return Done(code, stdout.getvalue(), stderr.getvalue())
