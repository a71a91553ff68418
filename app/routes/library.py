"""The style library's API: the paintings (GET /api/styles) and the example photos (GET /api/examples),
each with its thumbnail and its image.

The images and thumbnails were made once, when the library was loaded (core/library.py); they are
served from memory with an ETag and a year-long Cache-Control, and every URL the lists give carries
that ETag as ?v=, so a changed library (an operator's restart) gets new URLs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from app.schemas import ErrorOut
from core.library import THUMBNAIL_SIDE, Kind, Library, LibraryImage, UnknownLibraryImage, get_library

router = APIRouter(tags=["library"])

LibraryDep = Annotated[Library, Depends(get_library)]
# The URLs carry the image's digest, so a cached copy never goes stale.
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_FOUND = {404: {"model": ErrorOut, "description": "No painting or photo of that id in the library."}}
# Path segment of each kind's URLs.
SEGMENTS: dict[Kind, str] = {"style": "styles", "photo": "examples"}


class LibraryImageOut(BaseModel):
    """What every library image has."""

    id: str = Field(description="Its id: style_id (or content_example) of POST /api/jobs.")
    title: str
    licence: str = Field(description="e.g. Public domain, CC0.")
    source: str = Field(description="Where this copy comes from.")
    width: int = Field(description="Pixels of the image a job gets (image_url).")
    height: int
    thumbnail_url: str = Field(description=f"A JPEG at most {THUMBNAIL_SIDE} px on its longest side.")
    image_url: str = Field(description="The image as a job stores it (PNG).")


class StyleOut(LibraryImageOut):
    """A painting of the library."""

    artist: str
    year: str = Field(description='The year it was made, as art historians give it: "1889", "c. 1831".')


class ExampleOut(LibraryImageOut):
    """An example photo to try the service with."""

    credit: str = Field(description="Who took it (photographer, agency).")


def image_urls(image: LibraryImage) -> dict[str, str]:
    base = f"/api/{SEGMENTS[image.kind]}/{image.id}"
    return {"thumbnail_url": f"{base}/thumbnail?v={image.etag}", "image_url": f"{base}/image?v={image.etag}"}


def style_out(image: LibraryImage) -> StyleOut:
    return StyleOut(
        id=image.id,
        title=image.title,
        artist=image.author,
        year=image.year,
        licence=image.licence,
        source=image.source,
        width=image.width,
        height=image.height,
        **image_urls(image),
    )


def example_out(image: LibraryImage) -> ExampleOut:
    return ExampleOut(
        id=image.id,
        title=image.title,
        credit=image.author,
        licence=image.licence,
        source=image.source,
        width=image.width,
        height=image.height,
        **image_urls(image),
    )


@router.get("/api/styles", response_model=list[StyleOut], summary="The library's paintings")
def list_styles(library: LibraryDep) -> list[StyleOut]:
    """The paintings a job may use by id (style_id), the built-in ones first, then the operator's
    (ATELIER_STYLE_LIBRARY_DIR)."""
    return [style_out(image) for image in library.styles.values()]


@router.get("/api/examples", response_model=list[ExampleOut], summary="The example photos")
def list_examples(library: LibraryDep) -> list[ExampleOut]:
    """Photos to try the service with, as the content of a job (content_example)."""
    return [example_out(image) for image in library.photos.values()]


def _served(request: Request, image: LibraryImage, body: bytes, media_type: str, variant: str) -> Response:
    etag = f'"{image.etag}-{variant}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _find(library: Library, kind: Kind, image_id: str) -> LibraryImage:
    try:
        return library.style(image_id) if kind == "style" else library.photo(image_id)
    except UnknownLibraryImage as error:
        raise HTTPException(status_code=404, detail=str(error)) from error


def _add_image_routes(kind: Kind) -> None:
    @router.get(
        f"/api/{SEGMENTS[kind]}/{{image_id}}/thumbnail",
        summary=f"A {'painting' if kind == 'style' else 'example photo'}'s thumbnail (JPEG)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **NOT_FOUND},
        name=f"{kind}_thumbnail",
    )
    def thumbnail(image_id: str, request: Request, library: LibraryDep) -> Response:
        image = _find(library, kind, image_id)
        return _served(request, image, image.thumbnail, "image/jpeg", "thumbnail")

    @router.get(
        f"/api/{SEGMENTS[kind]}/{{image_id}}/image",
        summary=f"A {'painting' if kind == 'style' else 'example photo'} as a job stores it (PNG)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
        name=f"{kind}_image",
    )
    def full_image(image_id: str, request: Request, library: LibraryDep) -> Response:
        image = _find(library, kind, image_id)
        return _served(request, image, image.stored().png, "image/png", "image")


for _kind in SEGMENTS:
    _add_image_routes(_kind)
