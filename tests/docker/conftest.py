"""The container test's report: image sizes and where the time went, printed after pytest's results."""

from __future__ import annotations

import pytest

from tests.docker.test_containers import DOCKER_REPORT, SIZE_GOALS_MB


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    project = config.stash.get(DOCKER_REPORT, None)
    if project is None:
        return
    terminalreporter.section("docker-test: images and timings")
    for target, size in project.sizes_mb.items():
        terminalreporter.write_line(f"image {target}: {size:.0f} MB (goal <= {SIZE_GOALS_MB[target]} MB)")
    for step, seconds in project.timings.items():
        terminalreporter.write_line(f"{step}: {seconds:.0f} s")
