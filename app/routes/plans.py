"""POST /api/plan: the run plan (spec/plan.py) of images of given sizes, without uploading them.

The page asks it whether a mask fits its photo, and a client may ask what a job would do: its rungs
and their steps, the style images' sides, its tiles, its notes and its refusals. The plan is made by
the same function a submission and the worker use, so nothing here re-derives a rule.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from app.schemas import ErrorOut
from app.submission import options_from_form
from core.options import JobOptionsIn, OptionValueError
from core.settings import get_settings
from spec.options import StyleOptions
from spec.plan import Limits, MaskInput, plan_run

router = APIRouter(prefix="/api", tags=["plans"])


class ImageSize(BaseModel):
    width: int = Field(ge=1, le=1_000_000)
    height: int = Field(ge=1, le=1_000_000)


class MaskSize(ImageSize):
    black: bool = Field(False, description="No pixel of the mask is above black: its style goes nowhere.")


class PlanIn(BaseModel):
    content: ImageSize
    styles: list[ImageSize] = Field(min_length=1, max_length=64)
    masks: list[MaskSize | None] | None = Field(
        None, max_length=64, description="One per style image (null: no mask for that style), or none."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Job options by their public names, as POST /api/jobs takes them."
    )


@router.post(
    "/plan",
    responses={
        400: {"model": ErrorOut, "description": "The body is not JSON."},
        422: {"model": ErrorOut, "description": "A size or an option that is not one."},
    },
)
def plan(body: PlanIn) -> dict[str, Any]:
    """What a job on images of these sizes would do: output size, rungs (size, steps, share of the
    work, style side, tiled), notes and refusals (each naming its field). 200 even with refusals: the
    plan is the answer; 422 only for options that are not options."""
    unknown = sorted(set(body.options) - set(JobOptionsIn.model_fields))
    if unknown:
        raise HTTPException(422, f"options: unknown option(s): {', '.join(unknown)}")
    try:
        resolved = options_from_form(body.options).resolve()  # a bad value: SubmissionError, a 422
    except OptionValueError as error:
        raise HTTPException(422, f"{error.option}: {error}") from error
    masks = None
    if body.masks is not None:
        masks = [None if m is None else MaskInput(m.height, m.width, m.black) for m in body.masks]
    settings = get_settings()
    result = plan_run(
        (body.content.height, body.content.width),
        [(style.height, style.width) for style in body.styles],
        StyleOptions.from_public(resolved),
        masks=masks,
        # Tiles as ATELIER_MAX_TILE_PIXELS sets them; a worker's own device default is not known here.
        limits=Limits(max_tile_pixels=settings.max_tile_pixels or 0, max_styles=settings.max_style_images),
    )
    return result.as_json()
