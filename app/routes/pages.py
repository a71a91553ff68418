"""HTML pages: the upload form (GET /), its submission (POST /jobs) and a job's page (GET /jobs/{id}).

The pages work without JavaScript (a real multipart form, server-rendered job state); static/js/
enhances them. Job state always comes from the job store, so a reload or a second browser shows
the same thing as the first.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from redis.exceptions import RedisError
from starlette.datastructures import UploadFile

from app.deps import ExistingJob, JobStoreDep, StorageDep, SubmittersJob, job_store_for, request_cancel
from app.engine_state import engine_problem
from app.forms import form_values_from_query, option_groups, same_settings_url, settings_rows
from app.frontend import MODULE_PATH, shared_module
from app.job_tokens import request_holds_token, set_job_token_cookies
from app.routes.library import example_out, style_out
from app.status import public_status
from app.submission import (
    CONTENT_EXAMPLE_FIELD,
    StyleSource,
    SubmissionError,
    chosen_files,
    content_source,
    library_style,
    options_from_form,
    submit_job,
    was_chosen,
)
from app.templating import templates
from app.timing import preset_choices, timing_note
from core.jobs import Pace
from core.library import BUILTIN_DIR, get_library
from core.settings import get_settings
from core.storage import Storage, mask_key, style_key

logger = logging.getLogger(__name__)
router = APIRouter(tags=["pages"], include_in_schema=False)

# Form fields that have their own error slot on the upload page; other errors show at the top only.
FIELDS_WITH_ERROR_SLOT = frozenset({
    "content", "content_example", "style", "style_id", "style_blend", "preset", "mask"
} | {
    field.name for _, fields in option_groups(get_settings()) for field in fields
})  # fmt: skip


# Where POST /jobs keeps the form's text fields, so a refusal can show the form filled in again.
_SUBMITTED_VALUES = "upload_form_values"


def _render_index(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    error: SubmissionError | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    settings = get_settings()
    field_errors: dict[str, str] = {}
    if error is not None and error.field in FIELDS_WITH_ERROR_SLOT:
        # Next to the field its name is redundant: "size: must be ..." reads "must be ...".
        field_errors[error.field] = error.detail.removeprefix(f"{error.field}: ")
    paces: list[Pace] | None = None
    problem = None
    try:  # the form still works while Redis is down; only the estimates and the warning need it
        store = job_store_for(request)
        paces, problem = store.recent_paces(), engine_problem(store)
    except RedisError as redis_error:
        logger.warning("upload page without time estimates or engine state: %s", redis_error)
    context = {
        "presets": preset_choices(settings.max_size, settings.max_iterations, paces or []),
        "timing_note": timing_note(paces),
        "engine_problem": problem,
        "limits": settings,
        "values": values or {},
        "option_groups": option_groups(settings),
        "error": error,
        "field_errors": field_errors,
        **library_context(),
    }
    return templates.TemplateResponse(
        request, "index.html", context, status_code=error.status_code if error else 200, headers=headers
    )


def library_context() -> dict[str, Any]:
    """The library's paintings and example photos as the pages show them (the API's fields)."""
    library = get_library()
    return {
        "paintings": [style_out(image).model_dump() for image in library.styles.values()],
        "examples": [example_out(image).model_dump() for image in library.photos.values()],
    }


def upload_form_refused(request: Request, error: SubmissionError) -> HTMLResponse:
    """The answer to a refused POST /jobs (app.main's handler of SubmissionError): the upload form
    again, filled in with what was sent, the problem shown at the top and next to its field, with the
    refusal's status code (and Retry-After when trying later helps). Files cannot be filled in again."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    values = getattr(request.state, _SUBMITTED_VALUES, {})
    return _render_index(request, values=values, error=error, headers=headers)


@router.get(MODULE_PATH)
def shared_script() -> Response:
    """The pages' shared ES module: status labels, final states, accepted image types (app/frontend.py)."""
    return Response(
        shared_module(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/", response_class=HTMLResponse)
def upload_page(request: Request) -> HTMLResponse:
    """The upload form; a "same settings again" link fills it in from its query string."""
    return _render_index(request, values=form_values_from_query(request.query_params))


def _blend_weights(blend: str, style_count: int) -> str:
    """The page's one slider (share of the first style, 0..1) as style_blend: one weight per style."""
    if style_count != 2 or not blend.strip():
        return ""
    try:
        first = float(blend)
    except ValueError as error:
        raise SubmissionError(
            422, "style_blend: the blend must be a number between 0 and 1", "style_blend"
        ) from error
    if not 0 <= first <= 1:
        raise SubmissionError(422, "style_blend: the blend must be between 0 and 1", "style_blend")
    return f"{first:g},{1 - first:g}"


# The page's style slots: each is a file input (field "style", in this order) or a library painting
# (its radio buttons' field). The slots' order is the styles' order: style_blend and the masks follow it.
STYLE_SLOT_FIELDS = ("style_id", "style2_id")


def _styles_of_slots(style_parts: list[Any], values: dict[str, str]) -> list[StyleSource | None]:
    """Per slot of the page, its style image: the chosen painting or file, or None when it has neither.

    Every file input sends a part, filled or not, so the parts' positions are the slots'. A slot with
    both a painting and a file (possible only without JavaScript, which empties the other) is refused.
    """
    files = [part if isinstance(part, UploadFile) else None for part in style_parts]
    if len(files) != len(STYLE_SLOT_FIELDS):  # not the page's own form: its paintings, then its files
        paintings = [values.get(field, "").strip() for field in STYLE_SLOT_FIELDS]
        return [library_style(i) for i in paintings if i] + list(chosen_files(style_parts))
    slots: list[StyleSource | None] = []
    for number, (file, field) in enumerate(zip(files, STYLE_SLOT_FIELDS, strict=True), start=1):
        painting_id = values.get(field, "").strip()
        if painting_id and file is not None and was_chosen(file):
            raise SubmissionError(
                422,
                f"style: style {number} has both a painting and a file: choose one of them",
                "style",
            )
        if painting_id:
            slots.append(library_style(painting_id))
        else:
            slots.append(file if file is not None and was_chosen(file) else None)
    return slots


def _masks_of_chosen_slots(chosen: list[bool], mask_parts: list[Any]) -> list[UploadFile]:
    """The mask parts for the chosen styles, in their order (an empty part: no mask for it).

    The page has one mask input per style slot. Without JavaScript every input sends a part, so
    a slot left empty still comes with a mask part: when there is one mask part per slot, the masks
    of empty slots are dropped. With JavaScript, static/js/masks.js sends exactly one mask per
    chosen style, or none. Masks keep their positions, so empty mask parts are not filtered here.
    """
    masks = [value for value in mask_parts if isinstance(value, UploadFile)]
    if len(masks) == len(chosen):
        masks = [mask for mask, used in zip(masks, chosen, strict=True) if used]
    return masks


@router.post("/jobs")
async def submit_form(request: Request, store: JobStoreDep, storage: StorageDep) -> Response:
    """The upload form's target: 303 to the new job's page. A SubmissionError is answered by
    app.main's handler with the form again and the problem shown (upload_form_refused)."""
    form = await request.form()
    values = {name: value for name, value in form.multi_items() if isinstance(value, str)}
    setattr(request.state, _SUBMITTED_VALUES, values)
    try:
        contents = chosen_files(form.getlist("content"))
        content = content_source(contents[0] if contents else None, values.get(CONTENT_EXAMPLE_FIELD))
        slots = _styles_of_slots(form.getlist("style"), values)
        styles = [style for style in slots if style is not None]
        # An untouched field is "not given" (the options' defaults apply), not an empty value.
        fields = {name: value for name, value in values.items() if value.strip()}
        fields["style_blend"] = _blend_weights(values.get("blend", ""), len(styles))
        options = options_from_form(fields)
        masks = _masks_of_chosen_slots([style is not None for style in slots], form.getlist("mask"))
        job = await submit_job(content, styles, options, masks, store=store, storage=storage)
    finally:
        await form.close()
    redirect = RedirectResponse(f"/jobs/{job.id}", status_code=303)
    # The token travels only as HttpOnly cookies scoped to this job: the page's Cancel works as is.
    set_job_token_cookies(redirect, request, job.id, job.token, get_settings().job_ttl_seconds)
    return redirect


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, record: ExistingJob, store: JobStoreDep) -> HTMLResponse:
    """A job's live page: the server renders the current state, static/js/job.js keeps it live."""
    status = public_status(record, store)
    # Only the submitting browser (it holds the job's token cookie) is offered the Cancel button.
    can_cancel = request_holds_token(request, store.token_hash(record.id))
    context = {
        "job": status,
        "can_cancel": can_cancel,
        "settings_rows": settings_rows(record.options),
        "credit_rows": credit_rows(status),
        "same_settings_url": same_settings_url(record.options),
    }
    return templates.TemplateResponse(request, "job.html", context)


def credit_rows(status: dict[str, Any]) -> list[tuple[str, str]]:
    """The job's Settings list's credits: each style image (a library painting's title, artist and
    year, or "your image") and an example photo's."""
    credits = status["style_credits"]
    rows = []
    for number, credit in enumerate(credits, start=1):
        label = "Style" if len(credits) == 1 else f"Style {number}"
        painting = f"{credit['title']}, {credit['artist']}, {credit['year']}" if credit else "your image"
        rows.append((label, painting))
    photo = status["content_credit"]
    if photo:
        rows.append(("Photo", f"{photo['title']} (photo: {photo['credit']}, {photo['licence']})"))
    return rows


@router.get("/about", response_class=HTMLResponse)
def about_page(request: Request) -> HTMLResponse:
    """What Atelier is, and the credits of the library's paintings and example photos (PROVENANCE.md)."""
    context = {**library_context(), "provenance": (BUILTIN_DIR / "PROVENANCE.md").read_text(encoding="utf-8")}
    return templates.TemplateResponse(request, "about.html", context)


@router.post("/jobs/{job_id}/cancel")
def cancel_form(job: SubmittersJob, store: JobStoreDep) -> Response:
    """Cancel without JavaScript (the page's Cancel button is a form); back to the job's page, which
    shows the outcome (a job that finished meanwhile stays as it is)."""
    request_cancel(job, store)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}/styles/{index}")
def style_image(record: ExistingJob, storage: StorageDep, index: int) -> Response:
    """A job's style image (PNG, as stored): "use this style again" copies it into a new upload form."""
    if not 0 <= index < record.style_count:
        raise HTTPException(status_code=404, detail="This job has no such style image.")
    return _stored_png(storage, style_key(record.id, index), "style image")


@router.get("/jobs/{job_id}/masks/{index}")
def mask_image(record: ExistingJob, storage: StorageDep, index: int) -> Response:
    """The mask a job's style image number ``index`` was given (greyscale PNG, the content's size)."""
    if not 0 <= index < len(record.masks) or not record.masks[index]:
        raise HTTPException(status_code=404, detail="This job has no such mask.")
    return _stored_png(storage, mask_key(record.id, index), "mask")


def _stored_png(storage: Storage, key: str, what: str) -> Response:
    """One of a job's stored PNGs, or a 404 saying it is gone (retention removes files with the job)."""
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail=f"This job's {what} is no longer stored.") from error
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
