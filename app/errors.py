"""Error wording, written once, and its two renderings: JSON for the API, an HTML page for pages.

Routes raise ``HTTPException(status_code, detail=...)`` with the constants below; app.main's handlers
answer a browser page (any path outside /api/, the health checks and /static/) with templates/404.html
or 403.html, and everything else with FastAPI's JSON ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.templating import templates

JOB_NOT_FOUND = "Job not found"
NOT_THE_SUBMITTER = (
    "only the submitter can do this: send the job's token (X-Job-Token header or Authorization: "
    "Bearer), as POST /api/jobs returned it"
)
# A 503 while Redis (job store and broker) is unreachable; Redis restarts take seconds, so clients
# (and the pages' scripts) try again after Retry-After.
REDIS_UNAVAILABLE = "the job store (Redis) is unavailable; try again"
REDIS_RETRY_AFTER_SECONDS = 5

# What a page says for an API detail, where a person needs more than the short API wording.
_PAGE_MESSAGES = {
    JOB_NOT_FOUND: "There is no job with this id. Finished jobs are kept for a limited time.",
    NOT_THE_SUBMITTER: "Only the browser that submitted this job can cancel or delete it.",
    "Not Found": "There is no page at this address.",
}
_PAGE_TEMPLATES = {403: "403.html", 404: "404.html"}
# Paths that answer JSON (or an event stream, or files) even to a browser.
NOT_PAGES = ("/api/", "/healthz", "/readyz", "/static/", "/metrics", "/docs", "/redoc", "/openapi.json")


def is_page(request: Request) -> bool:
    """A browser page (HTML), as opposed to the JSON API, health checks, files and event streams."""
    return not request.url.path.startswith(NOT_PAGES)


def has_error_page(status_code: int) -> bool:
    return status_code in _PAGE_TEMPLATES


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    """The HTML page of a 403 or 404: the API's detail, or the longer sentence a page shows for it."""
    message = _PAGE_MESSAGES.get(detail, detail)
    return templates.TemplateResponse(
        request, _PAGE_TEMPLATES[status_code], {"message": message}, status_code=status_code
    )


def describe_validation_error(error: Mapping[str, Any]) -> tuple[str | None, str]:
    """(the field at fault or None, what is wrong) of one pydantic or FastAPI validation error."""
    location = [
        str(part)
        for part in error.get("loc", ())
        if not isinstance(part, int) and part not in ("body", "query", "path")
    ]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if message.startswith("Expected UploadFile"):
        message = "must be a file (a multipart/form-data part with a filename)"
    return (".".join(location) or None), message


def readable_validation_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """'size: Input should be less than or equal to 1024; ...': every error, one sentence each."""
    parts = []
    for error in errors:
        field, message = describe_validation_error(error)
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts) or "invalid request"
