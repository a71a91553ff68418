"""Submissions refused before their body is read, and file parts cut off as they stream (ASGI middleware).

For POST /api/jobs, POST /jobs and POST /api/batches only:

- the rate limit and the queue cap (app.submission.admit_submission) are checked before the first
  byte of the body is read, so a refused client costs one Redis round trip, not its uploads;
- each file part is counted as it streams, through a multipart parser of its own, and the request is
  cut off with 413 as soon as one passes ATELIER_MAX_UPLOAD_BYTES (app/limits.py bounds the whole body).

It is a middleware, not a route dependency: FastAPI reads a route's whole form before it runs any of
its dependencies. Refusals carry "Connection: close", so the server drops the rest of the body
instead of draining it.
"""

from __future__ import annotations

import json
import logging

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import is_page
from app.routes.pages import upload_form_refused
from app.submission import SubmissionError, admit_submission, client_address
from app.uploads import file_too_large
from core.jobs import get_job_store

logger = logging.getLogger(__name__)

SUBMISSION_PATHS = frozenset({"/api/jobs", "/jobs", "/api/batches"})


class FilePartTooLarge(Exception):
    def __init__(self, field: str, max_bytes: int) -> None:
        super().__init__(f"{field}: {file_too_large(max_bytes)}")
        self.field = field


class FilePartCounter:
    """Counts the bytes of each file part of a multipart body fed to it chunk by chunk; feed()
    raises FilePartTooLarge as soon as one passes max_bytes. A body it cannot parse is left to the
    form parser to refuse (counting stops)."""

    def __init__(self, boundary: bytes, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._field = ""
        self._is_file = False
        self._size = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._too_large: str | None = None
        self._broken = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
            },
        )

    @classmethod
    def for_headers(cls, content_type: bytes | None, max_bytes: int) -> FilePartCounter | None:
        """A counter for a multipart/form-data body, or None for any other (nothing to count)."""
        if content_type is None:
            return None
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            return None
        return cls(boundary, max_bytes)

    def feed(self, chunk: bytes) -> None:
        if self._broken or not chunk:
            return
        try:
            self._parser.write(chunk)
        except FormParserError:
            self._broken = True
        if self._too_large is not None:
            raise FilePartTooLarge(self._too_large, self.max_bytes)

    def _on_part_begin(self) -> None:
        self._field, self._is_file, self._size, self._disposition = "", False, 0, b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._field = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options  # other fields: Starlette's own 1 MB part limit

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._size += end - start
            if self._size > self.max_bytes and self._too_large is None:
                self._too_large = self._field


class SubmissionAdmission:
    """The middleware (see the module's docstring); max_file_bytes: ATELIER_MAX_UPLOAD_BYTES."""

    def __init__(self, app: ASGIApp, max_file_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in SUBMISSION_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await admit_submission(client_address(request), get_job_store())
        except SubmissionError as error:
            logger.info("submission refused before its body (%d): %s", error.status_code, error.detail)
            await _refusal(request, error)(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type")
        counter = FilePartCounter.for_headers(content_type, self.max_file_bytes)
        if counter is None:
            await self.app(scope, receive, send)
            return

        received = 0  # bytes of the body read so far: in the log line of a refusal

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                try:
                    counter.feed(message.get("body", b""))
                except FilePartTooLarge as error:
                    logger.info(
                        "submission refused while streaming (413) after %d bytes of the body: %s",
                        received,
                        error,
                    )
                    # Raised inside the form parsing: FastAPI and the page route let HTTPExceptions
                    # through, and the app answers it (as app/limits.py's body limit does).
                    raise HTTPException(413, detail=str(error), headers={"Connection": "close"}) from error
            return message

        await self.app(scope, counting_receive, send)


def _refusal(request: Request, error: SubmissionError) -> Response:
    headers = {"Connection": "close"}
    if error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    if is_page(request):
        # The upload form again with the problem at its top, as the page shows every refusal.
        page = upload_form_refused(request, error)
        page.headers.update(headers)
        return page
    body = json.dumps({"detail": error.detail}).encode()
    return Response(body, status_code=error.status_code, media_type="application/json", headers=headers)
