"""The event stream over plain HTTP (httpx) against the real stack: a worker runs the job while the
stream follows it. The pages' other HTTP behaviour runs in-process: tests/app/test_pages.py."""

from __future__ import annotations

from typing import Any

from tests.support.images import png_bytes
from tests.support.sse import read_events
from tests.support.stack import Stack


def test_event_stream_follows_a_job_to_its_end(stack: Stack) -> None:
    response = stack.submit(png_bytes(40, 32, seed=26), [png_bytes(32, 32, seed=27)], size=32, iterations=40)
    job_id = response.json()["id"]

    # Each stream ends after ATELIER_EVENT_STREAM_SECONDS; like an EventSource, connect again until
    # the stream says the job has ended.
    streams: list[list[tuple[str, Any]]] = []
    while not streams or streams[-1][-1][0] != "end":
        assert len(streams) < 30, "the stream never ended"
        with stack.client as client, client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            streams.append(read_events(stream))

    statuses = [data for events in streams for name, data in events if name == "message"]
    assert streams[-1][-1] == ("end", {"status": "succeeded"})
    assert statuses[-1] == stack.status(job_id)  # the same JSON as GET /api/jobs/{id}
    steps = [status["step"] for status in statuses if status["status"] == "running"]
    assert len(set(steps)) >= 3, steps
    assert steps == sorted(steps)
    assert any(status["preview_url"] for status in statuses if status["status"] == "running")
    # Only changes are sent: no two consecutive events of a stream are equal.
    for events in streams:
        sent = [data for name, data in events if name == "message"]
        assert all(before != after for before, after in zip(sent, sent[1:], strict=False))
