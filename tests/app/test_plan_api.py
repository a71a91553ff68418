"""POST /api/plan: the run plan of images of given sizes, as the page and clients read it."""

from __future__ import annotations

from tests.support.inprocess import InProcessWeb


def test_the_plan_of_a_print_lists_its_rungs_and_notes(web: InProcessWeb) -> None:
    body = {
        "content": {"width": 2048, "height": 2048},
        "styles": [{"width": 300, "height": 200}],
        "options": {"preset": "print"},
    }
    with web.client as client:
        response = client.post("/api/plan", json=body)
    assert response.status_code == 200, response.text
    plan = response.json()
    expected = [206, 104, 51, 26, 13] if plan["width"] == 2048 else None
    if expected:  # the server's ATELIER_MAX_SIZE allows a 2048 px print
        assert [rung["steps"] for rung in plan["rungs"]] == expected
    assert sum(rung["steps"] for rung in plan["rungs"]) == plan["steps"]
    assert plan["notes"] and plan["notes"][0].startswith("Style image 1 is 300x200 pixels")
    assert plan["refusals"] == []


def test_a_mask_of_another_shape_is_a_refusal_naming_the_mask(web: InProcessWeb) -> None:
    body = {
        "content": {"width": 640, "height": 480},
        "styles": [{"width": 512, "height": 512}],
        "masks": [{"width": 480, "height": 480}],
    }
    with web.client as client:
        plan = client.post("/api/plan", json=body).json()
        body["masks"] = [{"width": 320, "height": 240}]
        fitted = client.post("/api/plan", json=body).json()
    assert [refusal["field"] for refusal in plan["refusals"]] == ["mask"]
    assert "aspect ratio differs" in plan["refusals"][0]["message"]
    assert fitted["refusals"] == [] and fitted["notes"] == [
        "Mask 1 was 320x240 pixels; it was resized to the content's 640x480."
    ]


def test_bad_options_and_unknown_ones_are_422s_naming_them(web: InProcessWeb) -> None:
    sizes = {"content": {"width": 64, "height": 64}, "styles": [{"width": 64, "height": 64}]}
    with web.client as client:
        unknown = client.post("/api/plan", json={**sizes, "options": {"iteration": 5}})
        bad = client.post("/api/plan", json={**sizes, "options": {"ladder_start": 5}})
    assert unknown.status_code == 422 and "iteration" in unknown.json()["detail"]
    assert bad.status_code == 422 and bad.json()["detail"].startswith("ladder_start")
