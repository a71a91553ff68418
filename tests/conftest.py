"""Fixtures shared by the whole suite.

stack          a running Atelier (redis-server + Celery worker + uvicorn) for the whole session;
               see tests/support/stack.py for what it offers (base_url, client, submit, wait_for,
               queue_length, stored_files, redis_url, storage_dir).
stack_factory  start_stack(name, env, worker=True, **options) -> another running stack with extra
               environment (e.g. S3 storage) or start_stack options (redis_persistent=True); each
               distinct name starts once per session and stops at the end.
When a test fails, the last lines of every running stack's process logs are added to its report.

The session stack has ONE solo worker shared by every test: a test must not leave a job queued or
running (cancel long jobs it started; an autouse fixture cancels leftovers after each test that
uses `stack`); tests that count the queue call stack.wait_idle() first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.stack import Stack, start_stack

_running: list[Stack] = []


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    stacks: dict[str, Stack] = {}
    with contextlib.ExitStack() as exits:

        def start(
            name: str, env: dict[str, str] | None = None, *, worker: bool = True, **options: Any
        ) -> Stack:
            if name not in stacks:
                base_dir = tmp_path_factory.mktemp(f"stack-{name}")
                stacks[name] = exits.enter_context(start_stack(base_dir, env, worker=worker, **options))
                _running.append(stacks[name])
            return stacks[name]

        yield start
        _running.clear()


@pytest.fixture(scope="session")
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    """The default stack: local storage, random weights, one solo worker."""
    return stack_factory("default")


@pytest.fixture(autouse=True)
def _cancel_jobs_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the shared stack, cancel whatever it left queued or running (a failed test
    often does), so the next test starts with an idle worker instead of failing in turn."""
    yield
    if "stack" not in request.fixturenames:
        return
    shared: Stack = request.getfixturevalue("stack")
    leftovers = shared.busy_job_ids()
    if leftovers:
        for job_id in leftovers:  # not through the API: a browser-submitted job's token is not ours
            shared.cancel_in_store(job_id)
        shared.wait_idle(timeout=30)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for index, running in enumerate(_running):
            for name, tail in running.log_tails().items():
                report.sections.append((f"stack {index} {name} log (tail)", tail))
