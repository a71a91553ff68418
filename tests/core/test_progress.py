"""The time left (core/progress.py) follows the work done, at the pace of the run since it (re)started."""

from __future__ import annotations

from core.progress import eta_seconds


def test_the_eta_follows_the_work_and_a_resumed_runs_own_pace() -> None:
    assert eta_seconds(0.25, 30.0) == 90.0
    assert eta_seconds(0.0, 30.0) is None and eta_seconds(1.0, 30.0) == 0.0
    assert eta_seconds(0.75, 30.0, work_before=0.5) == 30.0  # a resumed run: its own pace
    assert eta_seconds(0.5, 30.0, work_before=0.5) is None  # nothing done since it resumed
