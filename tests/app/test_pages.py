"""The pages over HTTP, in-process: the form's POST, the no-JavaScript cancel, HTML 404 and 403 pages
(the API keeps JSON), and the event stream (this test plays the worker's part by changing the record).

The event stream of a job a worker runs: tests/e2e/test_pages_http.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import httpx
import pytest

from app.routes import events as event_stream
from core.jobs import JobStore
from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.sse import read_events
from tests.support.stack import REPO_ROOT

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
STATIC_JS = REPO_ROOT / "static" / "js"
TEMPLATES = REPO_ROOT / "templates"


def form_post(
    web: InProcessWeb, data: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]]
) -> httpx.Response:
    with web.client as client:
        return client.post("/jobs", data=data, files=files, follow_redirects=False)


def image_files(content: bytes, *styles: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("content", ("photo.png", content, "image/png"))]
    files += [("style", (f"style{index}.png", style, "image/png")) for index, style in enumerate(styles)]
    return files


def field_error(html: str, field_id: str) -> str:
    """The text of the error slot next to a form field ("" when empty)."""
    match = re.search(rf'id="{field_id}-error"[^>]*>([^<]*)<', html)
    assert match, f"no error slot for {field_id}"
    return match.group(1).strip()


def test_form_post_redirects_to_the_job_page(web: InProcessWeb) -> None:
    # The optional second style input is sent empty by browsers: it must not count as a style.
    files = image_files(png_bytes(40, 32, seed=21), png_bytes(32, 32, seed=22))
    files.append(("style", ("", b"", "application/octet-stream")))
    response = form_post(web, {"preset": "quick", "size": "32", "iterations": "3", "style_weight": ""}, files)

    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/jobs/([0-9a-f]{32})", response.headers["location"])
    assert match
    job_id = match.group(1)
    status = web.status(job_id)
    assert status["status"] == "queued"
    assert status["style_count"] == 1
    assert status["options"]["size"] == 32 and status["options"]["iterations"] == 3

    with web.client as client:
        page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert job_id in page.text
    assert 'id="progress-bar"' in page.text


def test_form_blend_slider_becomes_style_blend_with_two_styles(web: InProcessWeb) -> None:
    files = image_files(png_bytes(40, 32, seed=23), png_bytes(32, 32, seed=24), png_bytes(32, 32, seed=25))
    response = form_post(web, {"size": "32", "iterations": "2", "blend": "0.7"}, files)

    assert response.status_code == 303, response.text
    job_id = response.headers["location"].rsplit("/", 1)[1]
    status = web.status(job_id)
    assert status["style_count"] == 2
    assert status["options"]["style_blend"] == [0.7, 0.3]


def test_bad_form_posts_show_the_form_again_with_the_problem(web: InProcessWeb) -> None:
    queued_before, files_before = web.queue_length(), web.stored_files()

    text_as_png = [
        ("content", ("x.png", b"plain text", "image/png")),
        ("style", ("s.png", png_bytes(32, 32), "image/png")),
    ]
    not_an_image = form_post(web, {"size": "32"}, text_as_png)
    no_style = form_post(web, {"size": "32"}, image_files(png_bytes(32, 32)))
    too_small = form_post(web, {"size": "5"}, image_files(png_bytes(32, 32), png_bytes(32, 32, seed=1)))

    assert not_an_image.status_code in (400, 415, 422)
    assert field_error(not_an_image.text, "content-input")
    assert no_style.status_code in (400, 422)
    assert field_error(no_style.text, "style-input")
    assert too_small.status_code == 422
    assert "32" in field_error(too_small.text, "size")  # the smallest allowed size
    assert re.search(r'<details class="advanced" id="advanced" open>', too_small.text)
    assert 'value="5"' in too_small.text  # what the person typed is kept
    for response in (not_an_image, no_style, too_small):
        assert "text/html" in response.headers["content-type"]
        assert "The job was not started." in response.text
    assert web.queue_length() == queued_before
    assert web.stored_files() == files_before


def test_unknown_job_pages_are_html_404_pages_and_the_api_says_job_not_found(web: InProcessWeb) -> None:
    with web.client as client:
        unknown = client.get(f"/jobs/{UNKNOWN_ID}")
        malformed = client.get("/jobs/not-a-job-id")
        style = client.get(f"/jobs/{UNKNOWN_ID}/styles/0")
        api = [
            client.get(f"/api/jobs/{UNKNOWN_ID}"),
            client.get(f"/api/jobs/{UNKNOWN_ID}/events"),
            client.post(f"/api/jobs/{UNKNOWN_ID}/cancel"),
            client.delete(f"/api/jobs/{UNKNOWN_ID}"),
        ]
    for page in (unknown, malformed, style):
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "There is no job with this id" in page.text
    for response in api:  # one spelling everywhere
        assert response.status_code == 404
        assert response.json() == {"detail": "Job not found"}


def test_an_unknown_address_is_the_404_page_but_the_api_keeps_json(web: InProcessWeb) -> None:
    with web.client as client:
        page = client.get("/no/such/page")
        api = client.get("/api/no-such-endpoint")
        static = client.get("/static/js/no-such-script.js")

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text
    assert '<a class="button" href="/">' in page.text  # a way back
    assert api.status_code == static.status_code == 404
    assert api.json() == {"detail": "Not Found"}


def test_cancel_form_without_javascript_works_for_the_submitter_only(web: InProcessWeb) -> None:
    response = web.submit(png_bytes(40, 32, seed=30), [png_bytes(32, 32, seed=31)], size=32, iterations=2000)
    job_id = response.json()["id"]

    with web.stranger() as stranger:  # without the job's token cookie
        refused = stranger.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
        refused_by_api = stranger.post(f"/api/jobs/{job_id}/cancel")
    with web.client as client:  # the submitter: web.submit kept the token cookie
        cancel = client.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
        unknown = client.post(f"/jobs/{UNKNOWN_ID}/cancel", follow_redirects=False)

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")  # a page, not plain text
    assert "Only the browser that submitted this job can cancel or delete it." in refused.text
    assert refused_by_api.status_code == 403
    assert "only the submitter" in refused_by_api.json()["detail"]
    assert cancel.status_code == 303
    assert cancel.headers["location"] == f"/jobs/{job_id}"
    assert web.status(job_id)["status"] == "cancelled"  # it was queued: cancelled at once
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("text/html")


def test_event_stream_of_an_ended_job_sends_its_state_and_ends(web: InProcessWeb) -> None:
    response = web.submit(png_bytes(40, 32, seed=28), [png_bytes(32, 32, seed=29)], size=32, iterations=2)
    job_id = response.json()["id"]
    with web.client as client:
        final = client.post(f"/api/jobs/{job_id}/cancel").json()

    with web.client as client, client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = read_events(stream)

    assert final["status"] == "cancelled"
    assert events == [("message", final), ("end", {"status": "cancelled"})]


STREAM_SECONDS = 1.5


@pytest.fixture(scope="module")
def short_streams(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    """A web whose event streams end after STREAM_SECONDS (the browser would reconnect)."""
    return web_factory("short-streams", {"ATELIER_EVENT_STREAM_SECONDS": str(STREAM_SECONDS)})


def queued_job(web: InProcessWeb, seed: int) -> str:
    response = web.submit(png_bytes(40, 32, seed=seed), [png_bytes(32, 32, seed=seed + 1)], size=32)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def stream_while(
    web: InProcessWeb, job_id: str, change: Callable[[], object] | None = None
) -> httpx.Response:
    """The job's whole event stream; `change` runs 0.6 s after it opened, as a worker's write would."""
    timer = threading.Timer(0.6, change) if change else None
    with web.client as client, client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        if timer:
            timer.start()
        stream.read()
    if timer:
        timer.join()
    return stream


def test_an_unchanged_job_is_sent_once_then_heartbeats_until_the_stream_ends_without_end(
    short_streams: InProcessWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_stream, "HEARTBEAT_SECONDS", 0.4)
    job_id = queued_job(short_streams, seed=30)

    stream = stream_while(short_streams, job_id)

    assert stream.headers["cache-control"] == "no-cache"
    assert stream.text.startswith("retry: 500\n\n")  # the browser reconnects after half a second
    # No `end`: the job goes on, so the browser reconnects (and gets the current state at once).
    assert read_events(stream) == [("message", short_streams.status(job_id))]
    assert stream.text.count(": heartbeat\n\n") >= 2


def test_the_stream_sends_each_change_and_ends_when_the_job_ends_or_vanishes(
    short_streams: InProcessWeb,
) -> None:
    cancelled_id, vanished_id = queued_job(short_streams, seed=32), queued_job(short_streams, seed=34)
    with short_streams.redis() as redis:
        store = JobStore(redis)
        cancelled = read_events(
            stream_while(short_streams, cancelled_id, lambda: store.request_cancel(cancelled_id))
        )
        queued = short_streams.status(vanished_id)
        vanished = read_events(stream_while(short_streams, vanished_id, lambda: store.delete(vanished_id)))

    assert [name for name, _ in cancelled] == ["message", "message", "end"]
    assert cancelled[0][1]["status"] == "queued"
    assert cancelled[1:] == [
        ("message", short_streams.status(cancelled_id)),
        ("end", {"status": "cancelled"}),
    ]
    assert vanished == [("message", queued), ("end", {"status": "expired"})]


def test_the_pages_share_one_module_of_status_labels_final_states_and_accepted_types(
    web: InProcessWeb,
) -> None:
    with web.client as client:
        module = client.get("/js/shared.js")
        upload_page = client.get("/")

    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")  # runnable as a module
    assert 'export const FINISHED = Object.freeze(["succeeded", "failed", "cancelled"]);' in module.text
    assert '"succeeded": "Done"' in module.text and '"expired": "Expired"' in module.text
    assert '"image/webp"' in module.text and "PNG, JPEG, WebP, GIF, BMP or TIFF" in module.text
    # The upload page's inputs take the same list.
    assert 'accept="image/png,image/jpeg,image/webp,image/gif,image/bmp,image/tiff"' in upload_page.text
    # And nothing else in the front end spells them out again.
    for path in [*STATIC_JS.glob("*.js"), *TEMPLATES.glob("*.html")]:
        text = path.read_text()
        assert '"Cancelled"' not in text and "cancelled: " not in text, f"{path.name} defines status labels"
        assert "image/webp" not in text, f"{path.name} lists the accepted image types"
        assert '"succeeded", "failed", "cancelled"' not in text, f"{path.name} lists the final states"
