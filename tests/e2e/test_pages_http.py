"""The pages and the event stream over plain HTTP (httpx): the form's POST, 404s, Server-Sent Events."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.support.images import png_bytes
from tests.support.stack import Stack

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


def form_post(
    stack: Stack, data: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]]
) -> httpx.Response:
    with stack.client as client:
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


def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, parsed data) for every event of a finished stream; comments and retry are skipped."""
    events: list[tuple[str, Any]] = []
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def test_form_post_redirects_to_the_job_page(stack: Stack) -> None:
    # The optional second style input is sent empty by browsers: it must not count as a style.
    files = image_files(png_bytes(40, 32, seed=21), png_bytes(32, 32, seed=22))
    files.append(("style", ("", b"", "application/octet-stream")))
    response = form_post(
        stack, {"preset": "quick", "size": "32", "iterations": "3", "style_weight": ""}, files
    )

    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/jobs/([0-9a-f]{32})", response.headers["location"])
    assert match
    job_id = match.group(1)
    status = stack.status(job_id)
    assert status["style_count"] == 1
    assert status["options"]["size"] == 32 and status["options"]["iterations"] == 3

    with stack.client as client:
        page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert job_id in page.text
    assert 'id="progress-bar"' in page.text
    stack.wait_for(job_id, {"succeeded"}, timeout=60)


def test_form_blend_slider_becomes_style_blend_with_two_styles(stack: Stack) -> None:
    files = image_files(png_bytes(40, 32, seed=23), png_bytes(32, 32, seed=24), png_bytes(32, 32, seed=25))
    response = form_post(stack, {"size": "32", "iterations": "2", "blend": "0.7"}, files)

    assert response.status_code == 303, response.text
    job_id = response.headers["location"].rsplit("/", 1)[1]
    status = stack.status(job_id)
    assert status["style_count"] == 2
    assert status["options"]["style_blend"] == [0.7, 0.3]
    stack.wait_for(job_id, {"succeeded"}, timeout=60)


def test_bad_form_posts_show_the_form_again_with_the_problem(stack: Stack) -> None:
    queued_before, files_before = stack.queue_length(), stack.stored_files()

    text_as_png = [
        ("content", ("x.png", b"plain text", "image/png")),
        ("style", ("s.png", png_bytes(32, 32), "image/png")),
    ]
    not_an_image = form_post(stack, {"size": "32"}, text_as_png)
    no_style = form_post(stack, {"size": "32"}, image_files(png_bytes(32, 32)))
    too_small = form_post(stack, {"size": "5"}, image_files(png_bytes(32, 32), png_bytes(32, 32, seed=1)))

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
    assert stack.queue_length() == queued_before
    assert stack.stored_files() == files_before


def test_unknown_job_pages_are_404_pages(stack: Stack) -> None:
    with stack.client as client:
        unknown = client.get(f"/jobs/{UNKNOWN_ID}")
        malformed = client.get("/jobs/not-a-job-id")
        events = client.get(f"/api/jobs/{UNKNOWN_ID}/events")
        style = client.get(f"/jobs/{UNKNOWN_ID}/styles/0")
    assert unknown.status_code == malformed.status_code == style.status_code == 404
    assert "There is no job with this id" in unknown.text
    assert events.status_code == 404
    assert events.json()["detail"]


def test_event_stream_follows_a_job_to_its_end(stack: Stack) -> None:
    response = stack.submit(png_bytes(40, 32, seed=26), [png_bytes(32, 32, seed=27)], size=32, iterations=40)
    job_id = response.json()["id"]

    with stack.client as client, client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = read_events(stream)

    statuses = [data for name, data in events if name == "message"]
    assert events[-1] == ("end", {"status": "succeeded"})
    assert statuses[-1] == stack.status(job_id)  # the same JSON as GET /api/jobs/{id}
    steps = [status["step"] for status in statuses if status["status"] == "running"]
    assert len(set(steps)) >= 3, steps
    assert steps == sorted(steps)
    assert any(status["preview_url"] for status in statuses if status["status"] == "running")
    # Only changes are sent: no two consecutive events are equal.
    assert all(before != after for before, after in zip(statuses, statuses[1:], strict=False))


def test_event_stream_of_a_finished_job_sends_its_state_and_ends(stack: Stack) -> None:
    response = stack.submit(png_bytes(40, 32, seed=28), [png_bytes(32, 32, seed=29)], size=32, iterations=2)
    job_id = response.json()["id"]
    final = stack.wait_for(job_id, {"succeeded"}, timeout=60)

    with stack.client as client, client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        events = read_events(stream)

    assert events == [("message", final), ("end", {"status": "succeeded"})]


def test_cancel_form_without_javascript_works_for_the_submitter_only(stack: Stack) -> None:
    response = stack.submit(
        png_bytes(40, 32, seed=30), [png_bytes(32, 32, seed=31)], size=32, iterations=2000
    )
    job_id = response.json()["id"]

    with httpx.Client(base_url=stack.base_url) as stranger:  # without the job's token cookie
        refused = stranger.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
    with stack.client as client:  # the submitter: stack.submit kept the token cookie
        cancel = client.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
        unknown = client.post(f"/jobs/{UNKNOWN_ID}/cancel", follow_redirects=False)

    assert refused.status_code == 403
    assert cancel.status_code == 303
    assert cancel.headers["location"] == f"/jobs/{job_id}"
    assert stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=30)["status"] == "cancelled"
    assert unknown.status_code == 404
