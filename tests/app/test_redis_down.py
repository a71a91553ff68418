"""With Redis unreachable the API answers 503 JSON, and a refused submission leaves no files."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.stack import free_port


def test_api_answers_503_json_and_stores_nothing_when_redis_is_down(
    web_factory: Callable[..., InProcessWeb],
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    down = web_factory("redis-down", {"ATELIER_REDIS_URL": dead_redis})

    submitted = down.submit(png_bytes(48, 48, seed=50), [png_bytes(48, 48, seed=51)], size=32, iterations=2)
    with down.client as client:
        status = client.get("/api/jobs/0123456789abcdef0123456789abcdef")
        ready = client.get("/readyz")

    assert submitted.status_code == 503
    assert "could not be created" in submitted.json()["detail"]
    assert down.stored_files() == set()
    assert status.status_code == 503
    assert "Redis" in status.json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["redis"].startswith("error:")
