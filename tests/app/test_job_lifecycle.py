"""A job over real HTTP, Redis and a Celery worker: queued -> running -> succeeded, with previews."""

from __future__ import annotations

import pytest

from tests.support.images import image_format, image_size, png_bytes
from tests.support.stack import Stack


def test_job_runs_to_success_with_progress_preview_and_result(stack: Stack) -> None:
    response = stack.submit(png_bytes(80, 60, seed=1), [png_bytes(64, 64, seed=2)], size=64, iterations=25)

    assert response.status_code == 202, response.text
    created = response.json()
    job_id = created["id"]
    assert created["status"] == "queued"
    assert created["status_url"] == f"/api/jobs/{job_id}"
    assert created["page_url"] == f"/jobs/{job_id}"

    polls: list[dict] = []
    previews_seen: list[bytes] = []

    def watch(status: dict) -> None:
        polls.append(status)
        if status["status"] == "running" and status["preview_url"] and not previews_seen:
            with stack.client as client:
                preview = client.get(status["preview_url"])
            assert preview.status_code == 200
            assert preview.headers["content-type"] == "image/jpeg"
            previews_seen.append(preview.content)

    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, on_poll=watch)

    assert final["status"] == "succeeded", final
    statuses = [poll["status"] for poll in polls]
    assert "running" in statuses
    assert statuses.index("running") < statuses.index("succeeded")
    running_steps = [poll["step"] for poll in polls if poll["status"] == "running"]
    assert running_steps == sorted(running_steps) and len(set(running_steps)) > 2
    assert previews_seen, "no preview was available while the job ran"
    assert image_format(previews_seen[0]) == "JPEG"
    assert final["step"] == final["iterations"] == 25
    assert final["progress"] == 1.0
    assert set(final["loss"]) >= {"total", "content", "style", "tv"}
    assert final["started_at"] and final["finished_at"] and final["error"] is None
    assert final["finished_at"] >= final["started_at"] >= final["created_at"]

    with stack.client as client:
        result = client.get(final["result_url"])
        content = client.get(final["content_url"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert image_format(result.content) == "PNG"
    assert image_size(result.content) == (64, 48)  # 80x60 scaled to a longest side of 64
    assert content.status_code == 200
    assert image_size(content.content) == (80, 60)  # stored as uploaded, re-encoded


def test_two_styles_with_blend_and_queue_position(stack: Stack) -> None:
    stack.wait_idle()
    long_job = stack.submit(png_bytes(64, 64, seed=3), [png_bytes(48, 48, seed=4)], size=64, iterations=2000)
    long_id = long_job.json()["id"]
    stack.wait_for(long_id, {"running"})
    blended = stack.submit(
        png_bytes(48, 48, seed=5),
        [png_bytes(48, 48, seed=6), png_bytes(40, 40, seed=7)],
        size=48,
        iterations=5,
        style_blend="0.7,0.3",
    )
    assert blended.status_code == 202, blended.text
    blended_id = blended.json()["id"]

    waiting = stack.status(blended_id)
    assert waiting["status"] == "queued"
    assert waiting["queue_position"] == 1
    assert waiting["style_count"] == 2
    assert waiting["options"]["style_blend"] == [0.7, 0.3]

    with stack.client as client:
        assert client.post(f"/api/jobs/{long_id}/cancel").status_code == 200
    final = stack.wait_for(blended_id, {"succeeded", "failed", "cancelled"}, timeout=60)
    assert final["status"] == "succeeded", final
    assert final["queue_position"] is None


def test_a_finished_job_gives_the_upload_page_its_time_estimates(stack: Stack) -> None:
    response = stack.submit(png_bytes(64, 64, seed=3), [png_bytes(64, 64, seed=4)], size=64, iterations=4)
    final = stack.wait_for(response.json()["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert final["stats"]["megapixels"] == pytest.approx(64 * 64 / 1e6, abs=1e-4)
    assert final["stats"]["megapixel_steps"] == pytest.approx(4 * 64 * 64 / 1e6, abs=1e-4)

    with stack.client as client:
        page = client.get("/")

    assert "Estimated from the pace this server measured over its last" in page.text
    presets = page.text.split('id="field-preset"', 1)[1].split("</fieldset>", 1)[0]
    assert presets.count('class="preset-time">about ') == 4  # Quick, Standard, High and Print
