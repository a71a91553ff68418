"""Liveness, readiness (with the worker's heartbeat) and the OpenAPI description."""

from __future__ import annotations

from collections.abc import Callable

from core.jobs import get_job_store
from tests.support.inprocess import InProcessWeb
from tests.support.stack import Stack


def test_healthz_and_readyz_report_redis_storage_and_worker(stack: Stack) -> None:
    with stack.client as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200
    assert (body["status"], body["redis"], body["storage"], body["worker_seen"]) == (
        "ready",
        "ok",
        "ok",
        True,
    )
    assert body["workers"][0]["hostname"].startswith("test-")
    assert body["workers"][0]["seconds_ago"] < 60


def test_readyz_is_503_when_storage_is_unusable_and_says_no_worker_seen(
    web_factory: Callable[..., InProcessWeb], tmp_path_factory
) -> None:
    not_a_dir = tmp_path_factory.mktemp("broken") / "file"
    not_a_dir.write_text("storage cannot live under a file")
    broken = web_factory("broken-storage", {"ATELIER_STORAGE_DIR": str(not_a_dir / "storage")})

    with broken.client as client:
        response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["redis"] == "ok"
    assert body["storage"].startswith("error:")
    assert body["worker_seen"] is False and body["workers"] == []


def test_openapi_documents_every_endpoint_and_its_errors(web: InProcessWeb) -> None:
    with web.client as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/result",
        "/api/jobs/{job_id}/preview",
        "/api/jobs/{job_id}/content",
        "/api/jobs/{job_id}/cancel",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    assert {"202", "400", "413", "415", "422", "503"} <= set(paths["/api/jobs"]["post"]["responses"])
    assert "404" in paths["/api/jobs/{job_id}"]["get"]["responses"]
    options = spec["components"]["schemas"]["JobOptionsIn"]["properties"]
    assert all(options[name].get("description") for name in ("preset", "size", "iterations", "style_blend"))


def test_an_engine_that_failed_to_load_shows_in_readyz_and_the_page_until_a_live_worker_is_ready(
    web_factory: Callable[..., InProcessWeb],
) -> None:
    web = web_factory("engine-reports")
    with web.client as client:
        store = get_job_store()
        store.worker_seen("offline@host")
        store.set_worker_engine("offline@host", "weights file /w.h5 does not exist")
        failing, failing_page = client.get("/readyz"), client.get("/")
        store.worker_seen("ready@host")
        store.set_worker_engine("ready@host", None, weights="random (seed 0)", precision="float32")
        ready, ready_page = client.get("/readyz"), client.get("/")
        store.worker_gone("offline@host")
        store.worker_gone("ready@host")

    assert failing.status_code == 503
    assert failing.json()["engine"] == "error: weights file /w.h5 does not exist"
    assert 'id="engine-alert"' in failing_page.text and "/w.h5 does not exist" in failing_page.text
    assert ready.status_code == 200 and ready.json()["engine"] == "ok"
    assert 'id="engine-alert"' not in ready_page.text
