"""A submission's callback_url: checked before anything is stored (core/webhooks.py), 422 otherwise.

The event's URLs are absolute: ATELIER_PUBLIC_BASE_URL, or the base URL the submitting request came
to. Delivery is the webhooks worker's (worker/webhooks.py), sent by name from app/queue.py.
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.submission import SubmissionError
from core.settings import get_settings
from core.webhooks import CallbackRefused, check_callback_url

FIELD = "callback_url"


async def checked_callback(callback_url: str | None, request: Request) -> tuple[str, str] | None:
    """(the callback URL, the base of the event's URLs), or None without one; SubmissionError 422
    naming callback_url when it may not be called (or this server cannot sign events)."""
    if not callback_url:
        return None
    settings = get_settings()
    if not settings.webhook_secret.get_secret_value():
        raise SubmissionError(
            422, f"{FIELD}: this server sends no webhooks (ATELIER_WEBHOOK_SECRET is not set)", FIELD
        )
    try:  # resolving the name may take a while: not on the event loop
        await run_in_threadpool(
            check_callback_url, callback_url, allow_private=settings.webhook_allow_private
        )
    except CallbackRefused as error:
        raise SubmissionError(422, f"{FIELD}: {error}", FIELD) from error
    return callback_url, settings.public_base_url or str(request.base_url)
