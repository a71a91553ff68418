"""The web app in the test process (FastAPI's TestClient over app.main.create_app()), on a real Redis.

    web = InProcessWeb.create(tmp_dir, redis_url="redis://127.0.0.1:PORT/5", env={...})
    response = web.submit(content, [style])        # as Stack.submit, without a socket or uvicorn

An InProcessWeb is a Stack (tests/support/stack.py) without processes: the same helpers (client,
stranger, submit, status, queue_length, stored_files, busy_job_ids, ...), so a test of web behaviour
takes either. There is no worker: submitted jobs stay queued in the Redis database (each
configuration has its own), which is what web-only tests want.

Settings are process-wide (core.settings.get_settings is cached, read from ATELIER_* variables), so
only one configuration can be live at a time: every client() or stranger() makes its web the live
one (its environment applied, the cached settings, Redis client, storage and Celery client dropped),
and restore_environment() (an autouse fixture calls it after each test) puts os.environ back.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette 1.x warns at import that its TestClient will move to the "httpx2" package; the
    # client works as is with the pinned httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tests.support.stack import QUEUE_NAME, TEST_ENV, Stack

# os.environ as it was before an in-process web changed it; None while no web is live.
_saved_environment: dict[str, str] | None = None
_live: InProcessWeb | None = None


def _clear_cached_singletons() -> None:
    """Forget every cached factory of the web and the core (settings, Redis, storage, Celery client),
    so the next call builds them from the current environment."""
    # A copy taken in one step: another thread (a stack starting in the background) may be importing.
    for name, module in sys.modules.copy().items():
        if module is None or name.split(".")[0] not in {"app", "core"}:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


def restore_environment() -> None:
    """Undo what the live in-process web did to os.environ and the cached singletons."""
    global _saved_environment, _live
    if _saved_environment is None:
        return
    os.environ.clear()
    os.environ.update(_saved_environment)
    _saved_environment, _live = None, None
    _clear_cached_singletons()


@dataclass
class InProcessWeb(Stack):
    """The web app of one configuration, served in-process; see the module's docstring."""

    app: FastAPI | None = field(default=None, repr=False)

    @classmethod
    def create(cls, base_dir: Path, redis_url: str, env: dict[str, str] | None = None) -> InProcessWeb:
        """base_dir: an empty directory (storage, models); redis_url: a database of its own."""
        storage_dir = base_dir / "storage"
        storage_dir.mkdir(parents=True, exist_ok=True)
        web_env = {
            **TEST_ENV,
            "ATELIER_REDIS_URL": redis_url,
            "ATELIER_STORAGE_DIR": str(storage_dir),
            "ATELIER_MODEL_DIR": str(base_dir / "models"),
            **(env or {}),
        }
        web = cls(
            base_url="http://testserver",
            redis_url=web_env["ATELIER_REDIS_URL"],
            storage_dir=Path(web_env["ATELIER_STORAGE_DIR"]),
            queue_name=web_env.get("ATELIER_QUEUE_NAME", QUEUE_NAME),
            env=web_env,
        )
        web.activate()
        from app.main import create_app  # after activate(): create_app reads the settings

        web.app = create_app()
        return web

    def activate(self) -> None:
        """Make this configuration the live one (a no-op when it already is)."""
        global _saved_environment, _live
        if _live is self:
            return
        if _saved_environment is None:
            _saved_environment = dict(os.environ)
        os.environ.clear()
        os.environ.update({**_saved_environment, **self.env})
        _live = self
        _clear_cached_singletons()

    def _test_client(self, **options: Any) -> TestClient:
        self.activate()
        assert self.app is not None
        # raise_server_exceptions=False: an unhandled error is a 500 response, as uvicorn would send.
        return TestClient(self.app, base_url=self.base_url, raise_server_exceptions=False, **options)

    @property
    def client(self) -> TestClient:  # type: ignore[override]
        """A client sharing this web's cookie jar (one "browser"), like Stack.client."""
        return self._test_client(cookies=self.cookie_jar)

    def stranger(self) -> TestClient:  # type: ignore[override]
        """A client with no cookies: not the submitter of any job."""
        return self._test_client()
