"""The web application: create_app() gathers the routers; `app` is what uvicorn serves."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.admission import SubmissionAdmission
from app.errors import (
    REDIS_RETRY_AFTER_SECONDS,
    REDIS_UNAVAILABLE,
    error_page,
    has_error_page,
    is_page,
    readable_validation_errors,
)
from app.limits import BodySizeLimit
from app.metrics import router as metrics_router
from app.routes import api_docs, batches, events, health, jobs, library, pages, plans, videos
from app.security import SecurityHeaders
from app.submission import SubmissionError
from app.templating import STATIC_DIR, templates
from core.library import LibraryError, get_library
from core.logs import configure_logging
from core.settings import get_settings

logger = logging.getLogger(__name__)

# Multipart framing and option fields on top of the images themselves.
FORM_OVERHEAD_BYTES = 1024 * 1024


async def _validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    # "input" may hold an uploaded file object or a huge value: never echo it back.
    errors = jsonable_encoder([{k: v for k, v in error.items() if k != "input"} for error in exc.errors()])
    return JSONResponse(
        status_code=422, content={"detail": readable_validation_errors(errors), "errors": errors}
    )


async def _redis_error_handler(request: Request, exc: RedisError) -> Response:
    logger.error("%s %s: Redis unavailable: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)}
    if request.method == "GET" and is_page(request):
        sentence = REDIS_UNAVAILABLE[0].upper() + REDIS_UNAVAILABLE[1:] + "."
        return templates.TemplateResponse(
            request, "unavailable.html", {"message": sentence}, status_code=503, headers=headers
        )
    return JSONResponse(status_code=503, content={"detail": REDIS_UNAVAILABLE}, headers=headers)


async def _submission_error_handler(request: Request, exc: SubmissionError) -> Response:
    # The API and the HTML form share the submission (app/submission.py) and this one answer to its
    # refusals: JSON {"detail": ...} for the API, the upload form again for the form's POST /jobs.
    logger.info(
        "%s %s: submission refused (%d): %s", request.method, request.url.path, exc.status_code, exc.detail
    )
    if is_page(request):
        return pages.upload_form_refused(request, exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=headers)


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    # A page (an unknown address, a job that is not there, a cancel by somebody else) gets an HTML
    # page; the API keeps FastAPI's JSON {"detail": ...}.
    if has_error_page(exc.status_code) and is_page(request):
        return error_page(request, exc.status_code, str(exc.detail))
    return await http_exception_handler(request, exc)


def _load_library_or_exit() -> None:
    """Load the style library (core/library.py) now, so that its thumbnails are made once, before the
    first request, and a broken manifest or image stops the web at start with one log line naming the
    file. Here rather than in a lifespan handler: Starlette turns a lifespan's failure into a logged
    traceback, and an operator needs the one line."""
    try:
        library = get_library()
    except LibraryError as error:
        logger.critical("the style library cannot be used, so the web does not start: %s", error)
        raise SystemExit(1) from None
    logger.info("style library: %d paintings, %d example photos", len(library.styles), len(library.photos))


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    _load_library_or_exit()
    app = FastAPI(
        title="Atelier",
        summary="Neural style transfer as a service (Gatys et al., VGG19).",
        description="Submit a content image and style images; a worker optimises the result while "
        "you watch its progress and previews. See docs/api.md for curl examples.",
        version="0.1.0",
        docs_url=None,  # app/routes/api_docs.py serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(SubmissionError, _submission_error_handler)  # type: ignore[arg-type]
    max_body = (settings.max_style_images + 1) * settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.add_middleware(SubmissionAdmission, max_file_bytes=settings.max_upload_bytes)  # inside the body limit
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body)
    app.add_middleware(SecurityHeaders)  # added last = outermost: the body-limit 413 gets them too
    app.mount(api_docs.ASSETS_URL, api_docs.asset_files(), name="api-docs")  # before /static
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        api_docs.router,
        health.router,
        jobs.router,
        videos.router,
        plans.router,
        library.router,
        pages.router,
        events.router,
        batches.router,
        batches.page_router,
        metrics_router,
    ):
        app.include_router(router)
    logger.info("web app created (redis %s, storage %s)", _redacted(settings.redis_url), settings.storage_dir)
    return app


def _redacted(url: str) -> str:
    """The URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


app = create_app()
