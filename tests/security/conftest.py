"""Fixtures of the security tests.

web_only  a stack with no worker: submitted jobs stay queued, so token, limit and hostile-input
          checks run in milliseconds and never depend on the engine.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.stack import Stack


@pytest.fixture(scope="session")
def web_only(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory("security-web-only", worker=False)
