"""The style library in the web: the lists, their images' caching, jobs by id, an operator's own
directory, and a broken one that stops the web (in-process: app.main.create_app on a real Redis)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from core.library import BUILTIN_DIR, MANIFEST_NAME
from tests.support.images import image_size, png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.stack import REPO_ROOT, TEST_ENV, VENV_BIN, Stack, free_port

SIX_PAINTINGS = [
    "van-gogh-starry-night",
    "munch-the-scream",
    "turner-the-shipwreck",
    "kandinsky-composition-vii",
    "hokusai-great-wave",
    "picabia-udnie",
]


def test_the_api_lists_six_paintings_with_their_credits_and_sizes(web: InProcessWeb) -> None:
    with web.client as client:
        styles = client.get("/api/styles").json()
    assert [style["id"] for style in styles] == SIX_PAINTINGS
    wave = styles[SIX_PAINTINGS.index("hokusai-great-wave")]
    assert wave["title"] == "The Great Wave off Kanagawa"
    assert wave["artist"] == "Katsushika Hokusai"
    assert wave["year"] == "c. 1831"
    assert wave["licence"] == "Public domain"
    assert (wave["width"], wave["height"]) == (928, 514)
    with web.client as client:
        image = client.get(wave["image_url"])
    assert image.headers["content-type"] == "image/png"
    assert image_size(image.content) == (928, 514)


def test_thumbnails_are_small_cached_for_long_and_revalidated_by_etag(web: InProcessWeb) -> None:
    with web.client as client:
        style = client.get("/api/styles").json()[0]
        thumbnail = client.get(style["thumbnail_url"])
        again = client.get(style["thumbnail_url"], headers={"If-None-Match": thumbnail.headers["etag"]})
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert max(image_size(thumbnail.content)) == 240
    assert "max-age=31536000" in thumbnail.headers["cache-control"]
    assert again.status_code == 304 and again.content == b""


def test_the_examples_list_the_four_photos_with_their_credits(web: InProcessWeb) -> None:
    with web.client as client:
        examples = client.get("/api/examples").json()
    assert [example["id"] for example in examples] == ["astronaut", "chelsea", "coffee", "rocket"]
    chelsea = examples[1]
    assert chelsea["credit"] == "Stefan van der Walt" and chelsea["licence"] == "CC0"


def test_the_shipped_files_match_their_checksums() -> None:
    sums = (BUILTIN_DIR / "SHA256SUMS").read_text().split("\n")
    manifest = json.loads((BUILTIN_DIR / MANIFEST_NAME).read_text())
    files = {entry["file"] for section in manifest.values() for entry in section}
    listed = {}
    for line in filter(None, sums):
        digest, name = line.split()
        listed[name] = digest
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((BUILTIN_DIR / name).read_bytes()).hexdigest() == digest, name


def test_an_unknown_style_id_is_a_422_naming_it_with_nothing_stored_or_queued(web: InProcessWeb) -> None:
    before_files, before_queue = web.stored_files(), web.queue_length()
    with web.client as client:
        response = client.post(
            "/api/jobs",
            data={"style_id": ["munch-the-scream", "mona-lisa"], "size": "32"},
            files={"content": ("c.png", png_bytes(40, 30), "image/png")},
        )
    assert response.status_code == 422
    assert "mona-lisa" in response.json()["detail"]
    assert web.stored_files() == before_files
    assert web.queue_length() == before_queue


def test_a_library_painting_is_stored_into_the_job_like_an_upload_and_credited(web: InProcessWeb) -> None:
    # A multipart body with the parts in this order: an upload, then a painting by id.
    with web.client as client:
        response = client.post(
            "/api/jobs",
            data={"size": "32", "style_blend": "0.25,0.75"},
            files=[
                ("content", ("c.png", png_bytes(40, 30), "image/png")),
                ("style", ("mine.png", png_bytes(32, 32, seed=3), "image/png")),
                ("style_id", (None, "hokusai-great-wave")),
            ],
        )
        assert response.status_code == 202, response.text
        job = client.get(response.json()["status_url"]).json()
        stored = client.get(f"/jobs/{job['id']}/styles/1").content
        painting = client.get("/api/styles/hokusai-great-wave/image").content
    assert job["style_count"] == 2
    assert job["style_credits"] == [
        None,
        {
            "id": "hokusai-great-wave",
            "title": "The Great Wave off Kanagawa",
            "artist": "Katsushika Hokusai",
            "year": "c. 1831",
            "licence": "Public domain",
        },
    ]
    assert job["options"]["style_blend"] == [0.25, 0.75]  # the upload's weight first, as sent
    assert stored == painting  # in the job's own storage: a worker needs no copy of the library


def test_an_example_photo_and_a_painting_make_a_job_without_any_upload(web: InProcessWeb) -> None:
    with web.client as client:
        response = client.post(
            "/api/jobs", data={"content_example": "chelsea", "style_id": "munch-the-scream", "size": "32"}
        )
        assert response.status_code == 202, response.text
        job = client.get(response.json()["status_url"]).json()
        content = client.get(job["content_url"]).content
    assert job["content_credit"]["title"] == "Chelsea the cat"
    assert job["style_credits"][0]["artist"] == "Edvard Munch"
    assert image_size(content) == (451, 300)


def test_an_unknown_example_is_a_422_naming_it(web: InProcessWeb) -> None:
    with web.client as client:
        response = client.post("/api/jobs", data={"content_example": "moon", "style_id": "munch-the-scream"})
    assert response.status_code == 422
    assert "moon" in response.json()["detail"]


def _operator_dir(root: Path, manifest: object | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "paintings").mkdir(exist_ok=True)
    (root / "paintings" / "stripes.png").write_bytes(png_bytes(96, 64, seed=9))
    if manifest is None:
        manifest = {
            "styles": [
                {
                    "id": "house-stripes",
                    "title": "Stripes",
                    "artist": "The House Painter",
                    "year": "2026",
                    "licence": "CC0",
                    "source": "made for the tests",
                    "file": "paintings/stripes.png",
                }
            ]
        }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


def test_an_operator_directory_adds_its_painting_to_the_list_and_the_page(
    web_factory: Callable[..., InProcessWeb], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = _operator_dir(tmp_path_factory.mktemp("operator-library"))
    web = web_factory("operator-library", {"ATELIER_STYLE_LIBRARY_DIR": str(directory)})
    with web.client as client:
        ids = [style["id"] for style in client.get("/api/styles").json()]
        page = client.get("/").text
    assert ids == [*SIX_PAINTINGS, "house-stripes"]
    assert "The House Painter" in page and 'value="house-stripes"' in page


@pytest.mark.parametrize(
    ("manifest", "image", "named"),
    [
        ("{not json", None, MANIFEST_NAME),
        ({"styles": [{"id": "x", "title": "X"}]}, None, MANIFEST_NAME),
        (None, b"not an image at all", "stripes.png"),
    ],
    ids=["not-json", "missing-fields", "broken-image"],
)
def test_a_broken_library_stops_the_web_with_one_line_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, manifest: object, image: bytes | None, named: str
) -> None:
    directory = _operator_dir(tmp_path / "library")
    if isinstance(manifest, str):
        (directory / MANIFEST_NAME).write_text(manifest)
    elif manifest is not None:
        (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    if image is not None:
        (directory / "paintings" / "stripes.png").write_bytes(image)
    caplog.set_level(logging.INFO)
    with pytest.raises(SystemExit) as stopped:
        InProcessWeb.create(
            tmp_path / "web", "redis://127.0.0.1:1/0", {"ATELIER_STYLE_LIBRARY_DIR": str(directory)}
        )
    assert stopped.value.code == 1
    problems = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(problems) == 1
    message = problems[0].getMessage()
    assert "\n" not in message and named in message and str(directory) in message


@pytest.mark.processes
def test_uvicorn_with_a_broken_manifest_exits_with_one_line_naming_it(tmp_path: Path) -> None:
    directory = _operator_dir(tmp_path / "library", {"styles": [{"id": "x"}]})
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": str(REPO_ROOT)}
    env["ATELIER_STYLE_LIBRARY_DIR"] = str(directory)
    done = subprocess.run(
        [str(VENV_BIN / "uvicorn"), "app.main:app", "--port", str(free_port())],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert str(directory / MANIFEST_NAME) in lines[0] and "does not start" in lines[0]


def test_a_job_by_ids_alone_runs_to_success_on_a_worker(stack: Stack) -> None:
    job = {"content_example": "rocket", "style_id": "van-gogh-starry-night", "size": 32, "iterations": 6}
    with stack.client as client:
        response = client.post("/api/jobs", data=job)
    assert response.status_code == 202, response.text
    final = stack.wait_for(response.json()["id"], {"succeeded", "failed", "cancelled"})
    assert final["status"] == "succeeded", final
    assert final["style_credits"][0]["title"] == "The Starry Night"
    with stack.client as client:
        result = client.get(final["result_url"])
    assert image_size(result.content) == (32, 21)  # the 640x427 rocket at 32 px


def _page_form(style_files: list[tuple[str, bytes]], **fields: str) -> dict:  # type: ignore[type-arg]
    """POST /jobs as the page's plain form sends it: a part per file input, filled or not."""
    files = [("content", ("c.png", png_bytes(40, 30), "image/png"))]
    files += [
        ("style", (name, data, "image/png" if data else "application/octet-stream"))
        for name, data in style_files
    ]
    return {"data": {"size": "32", **fields}, "files": files}


def test_the_page_form_keeps_each_slot_in_its_place(web: InProcessWeb) -> None:
    # Slot 1: an upload; slot 2: The Scream. The blend slider is the first slot's share.
    form = _page_form(
        [("mine.png", png_bytes(32, 32, seed=4)), ("", b"")], style2_id="munch-the-scream", blend="0.8"
    )
    with web.client as client:
        response = client.post("/jobs", follow_redirects=False, **form)
        assert response.status_code == 303, response.text
        job = client.get(f"/api/jobs/{response.headers['location'].rsplit('/', 1)[1]}").json()
        page = client.get(response.headers["location"]).text
    assert [credit and credit["id"] for credit in job["style_credits"]] == [None, "munch-the-scream"]
    assert job["options"]["style_blend"] == [0.8, pytest.approx(0.2)]
    assert "The Scream, Edvard Munch, 1893" in page and "your image" in page


def test_the_page_form_refuses_a_slot_with_both_a_painting_and_a_file(web: InProcessWeb) -> None:
    before = web.stored_files()
    form = _page_form([("mine.png", png_bytes(32, 32, seed=4)), ("", b"")], style_id="picabia-udnie")
    with web.client as client:
        response = client.post("/jobs", follow_redirects=False, **form)
    assert response.status_code == 422
    assert "style 1 has both a painting and a file" in response.text
    assert re.search(r'value="picabia-udnie"[^>]*checked', response.text)  # the choice is kept
    assert web.stored_files() == before
