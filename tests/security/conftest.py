"""Fixtures of the security tests.

web_only  the in-process web app (the root conftest's `web`: no worker, submitted jobs stay queued),
          so token, limit and hostile-input checks run in milliseconds and never depend on the
          engine. Tests about the server process itself use `web_process` (real uvicorn) instead.
"""

from __future__ import annotations

import pytest

from tests.support.inprocess import InProcessWeb


@pytest.fixture(scope="session")
def web_only(web: InProcessWeb) -> InProcessWeb:
    return web
