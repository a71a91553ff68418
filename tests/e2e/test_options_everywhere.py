"""Every engine option reaches the API, the page, the job's Settings and the CLI, from one schema."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from app.forms import PAGE_LABELS
from spec.options import option_specs
from tests.support.images import png_bytes
from tests.support.stack import Stack

SPECS = option_specs()
# The page shows an option once: an old name kept for the API and CLI (preserve_colors is
# colors=luminance) is set through the option it stands for.
PAGE_SPECS = [spec for spec in SPECS if spec.alias_of is None]
# Options the page sets with its own control (the style-mix slider) rather than the Advanced panel.
OWN_CONTROLS = {"style_blend"}

# A job that sets options the first web version could not reach.
CHOSEN = {
    "size": 32,
    "iterations": 3,
    "init": "noise",
    "seed": 7,
    "style_scale": 0.5,
    "style_layer_weights": "4,2,1,1,1",
    "learning_rate": 0.05,
    "scales": "0.5,1",
    "content_weight": 100,
    "tv_weight": 1,
    "preview_every": 0,
}


def _result(stack: Stack, job_id: str) -> bytes:
    stack.wait_for(job_id, {"succeeded"})
    response = stack.client.get(f"/api/jobs/{job_id}/result")
    assert response.status_code == 200
    return response.content


def test_openapi_describes_every_option_with_its_help(stack: Stack) -> None:
    schema = stack.client.get("/openapi.json").json()
    body = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    options_ref = body["allOf"][0]["$ref"].rsplit("/", 1)[-1]  # the form: the options plus the files
    form = schema["components"]["schemas"][options_ref]["properties"]
    for spec in SPECS:
        assert spec.public in form, f"{spec.public} is not in the API"
        assert spec.help in form[spec.public]["description"]


def test_cli_help_lists_every_option_with_its_default() -> None:
    atelier = Path(sys.executable).with_name("atelier")
    done = subprocess.run(
        [str(atelier), "stylize", "--help"], capture_output=True, text=True, timeout=60,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = [" ".join(entry.split()) for entry in re.split(r"\n  (?=-)", done.stdout)]
    for spec in SPECS:
        entry = next((entry for entry in entries if entry.startswith(spec.flag + " ")), "")
        assert f"{spec.help}" in entry and f"(default: {spec.describe_default()})" in entry, entry


def test_options_sent_to_the_api_are_what_the_worker_runs(stack: Stack) -> None:
    content, style = png_bytes(40, 32, seed=1), png_bytes(32, 32, seed=2)
    first = stack.submit(content, [style], **CHOSEN)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    image = _result(stack, job_id)
    options = stack.status(job_id)["options"]
    assert options["init"] == "noise" and options["seed"] == 7 and options["style_scale"] == 0.5
    assert options["style_layer_weights"] == [4, 2, 1, 1, 1] and options["scales"] == [0.5, 1]
    assert set(options) >= {spec.public for spec in SPECS}, "the record keeps every setting"

    # The seed reproduces the picture; another seed (noise start) gives another one.
    same = _result(stack, stack.submit(content, [style], **CHOSEN).json()["id"])
    other = _result(stack, stack.submit(content, [style], **{**CHOSEN, "seed": 8}).json()["id"])
    assert same == image
    assert other != image


def test_an_option_the_engine_refuses_is_a_422_naming_it_and_nothing_is_queued(stack: Stack) -> None:
    stack.wait_idle()
    before = stack.stored_files()
    for options, named in (
        ({"scales": "1,0.5"}, "scales"),
        ({"style_layer_weights": "1,2"}, "style_layer_weights"),
        ({"content_layers": "block9_conv9"}, "content_layers"),
        ({"style_scale": 9}, "style_scale"),
    ):
        response = stack.submit(png_bytes(32, 32), [png_bytes(32, 32, seed=1)], size=32, **options)
        assert response.status_code == 422, response.text
        assert named in response.json()["detail"]
    assert stack.stored_files() == before


def test_the_page_offers_every_option_and_a_job_page_shows_them_and_offers_them_again(stack: Stack) -> None:
    upload = stack.client.get("/").text
    for spec in PAGE_SPECS:
        if spec.public not in OWN_CONTROLS:
            assert re.search(rf'name="{spec.public}"', upload), f"no input for {spec.public} on the page"

    job_id = stack.submit(png_bytes(40, 32, seed=1), [png_bytes(32, 32, seed=2)], **CHOSEN).json()["id"]
    stack.wait_for(job_id, {"succeeded"})
    page = html.unescape(stack.client.get(f"/jobs/{job_id}").text)
    settings = page[page.index('id="settings-heading"') :]
    for spec in PAGE_SPECS:
        label = PAGE_LABELS[spec.public][0]
        assert f"<dt>{label}</dt>" in settings, f"the Settings list lacks {label}"
    assert "<dt>Seed</dt><dd>7</dd>" in settings and "<dt>Start from</dt><dd>noise</dd>" in settings
    # ATELIER_PRECISION=auto's choice is the worker's, so the page shows what it was.
    assert re.search(r'<dd id="precision">(float32|mixed_bfloat16|mixed_float16)</dd>', settings)

    link = re.search(r'id="same-settings-link" href="([^"]+)"', page)
    assert link, "no 'Same settings again' link"
    query = dict(parse_qsl(urlsplit(link.group(1)).query))
    assert query["seed"] == "7" and query["scales"] == "0.5,1" and query["init"] == "noise"
    again = html.unescape(stack.client.get(link.group(1)).text)
    assert re.search(r'name="seed"[^>]*value="7"', again)
    assert re.search(r'name="style_layer_weights"[^>]*value="4,2,1,1,1"', again)
    assert re.search(r'<option value="noise" selected>', again)
