"""Webhook delivery: a Celery app and task of their own, on ATELIER_WEBHOOK_QUEUE.

A finished job with a callback_url gets one task (announce_finished, called wherever a job reaches
its final state); the webhooks worker runs it, never a style worker, so a delivery never waits behind
a style transfer and a slow receiver never holds a GPU:

    celery -A worker.webhooks worker -Q atelier-webhooks --pool=threads --concurrency=8

Each attempt re-checks the URL (core/webhooks.py: a name that now resolves to a private address is
refused), connects to the address it checked (no second DNS lookup), follows no redirect, waits at
most ATELIER_WEBHOOK_TIMEOUT_SECONDS and reads at most MAX_RESPONSE_BYTES of the answer. A failure
(no connection, a timeout, any status but 2xx) is retried by Celery with exponential backoff and
jitter for about ATELIER_WEBHOOK_RETRY_SECONDS; every attempt is recorded in the job store and shown
in the job's status. This module imports no TensorFlow: the webhooks worker is small.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
from typing import Any

from celery import Celery
from redis.exceptions import RedisError

from core.jobs import JobRecord, JobStore, get_job_store, is_job_id
from core.routing import WEBHOOK_TASK_NAME
from core.settings import Settings, get_settings
from core.webhooks import SIGNATURE_HEADER, CallbackRefused, CallbackTarget, check_callback_url, job_event
from core.webhooks import signature_header as make_signature

logger = logging.getLogger(__name__)
settings = get_settings()

MAX_RESPONSE_BYTES = 4096  # of a receiver's answer: read (so the connection ends cleanly), never kept
BACKOFF_MAX_SECONDS = 120  # Celery's retry_backoff_max: the longest wait between two attempts
USER_AGENT = "Atelier-Webhooks/1"


def max_retries(retry_seconds: float, backoff_max: float = BACKOFF_MAX_SECONDS) -> int:
    """Retries whose backoff (1, 2, 4 ... s, capped at backoff_max; jitter only shortens them) fits
    in retry_seconds."""
    retries, waited = 0, 0.0
    while waited + min(2.0**retries, backoff_max) <= retry_seconds:
        waited += min(2.0**retries, backoff_max)
        retries += 1
    return retries


# Not the current app: the style worker imports this module only to send the task by name.
app = Celery("atelier-webhooks", broker=settings.redis_url, set_as_current=False)
app.conf.update(
    task_default_queue=settings.webhook_queue,
    task_acks_late=True,  # a webhooks worker that dies mid-delivery leaves the message to another
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # A retry waits in the worker (an ETA) unacknowledged: Redis must not hand it out again meanwhile.
    broker_transport_options={"visibility_timeout": 10 * BACKOFF_MAX_SECONDS},
)


class DeliveryFailed(Exception):
    """This attempt did not get a 2xx answer: Celery retries it (autoretry_for)."""


def announce_finished(store: JobStore, job_id: str) -> None:
    """Send the finished job's webhook task if it has a callback not yet sent (JobStore.webhook_due).
    Never raises: a job's outcome must not depend on its notification."""
    try:
        if store.webhook_due(job_id):
            app.send_task(WEBHOOK_TASK_NAME, args=[job_id], queue=settings.webhook_queue)
            logger.info("job %s: webhook queued", job_id)
    except Exception:
        logger.exception("job %s: could not queue its webhook", job_id)


@app.task(
    name=WEBHOOK_TASK_NAME,
    bind=True,
    autoretry_for=(DeliveryFailed,),
    retry_backoff=1,
    retry_backoff_max=BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=max_retries(settings.webhook_retry_seconds),
)
def deliver(self: Any, job_id: str) -> dict[str, Any]:
    """One attempt at POSTing the finished job's event; raises DeliveryFailed to be retried."""
    if not is_job_id(job_id):
        return {"outcome": "refused"}
    store = get_job_store()
    record = store.get(job_id)
    if record is None or not record.callback_url:
        logger.info("job %s: no record or no callback any more; webhook dropped", job_id)
        return {"outcome": "missing"}
    number = self.request.retries + 1
    final = self.request.retries >= self.max_retries
    attempt = attempt_delivery(record, get_settings(), number, final)
    try:
        store.record_webhook_attempt(job_id, attempt, attempt["outcome"])
    except RedisError:
        logger.exception("job %s: webhook attempt %d not recorded", job_id, number)
    logger.info(
        "job %s: webhook attempt %d to %s: %s (%s)",
        job_id,
        number,
        attempt.get("host"),
        attempt["outcome"],
        attempt.get("status_code") or attempt.get("error"),
    )
    if attempt["outcome"] == "retrying":
        raise DeliveryFailed(attempt.get("error") or f"answered {attempt.get('status_code')}")
    return attempt


def attempt_delivery(record: JobRecord, settings: Settings, number: int, final: bool) -> dict[str, Any]:
    """POST the event once; the attempt as recorded: its outcome (delivered, retrying, failed after
    the last retry, refused), status code or error, and how long it took."""
    started = time.time()
    attempt: dict[str, Any] = {"attempt": number, "at": round(started, 3), "status_code": None, "error": None}
    try:
        target = check_callback_url(record.callback_url, allow_private=settings.webhook_allow_private)
    except CallbackRefused as error:
        return {**attempt, "outcome": "refused", "error": f"callback_url {error}", "seconds": 0.0}
    attempt["host"] = target.netloc
    body = json.dumps(job_event(record, record.base_url), separators=(",", ":")).encode()
    secret = settings.webhook_secret.get_secret_value()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: make_signature(secret, int(time.time()), body),
    }
    try:
        status = post_pinned(target, body, headers, settings.webhook_timeout_seconds)
        attempt["status_code"] = status
        ok = 200 <= status < 300
    except (OSError, http.client.HTTPException) as error:
        attempt["error"] = f"{type(error).__name__}: {error}"[:300]
        ok = False
    attempt["seconds"] = round(time.time() - started, 3)
    attempt["outcome"] = "delivered" if ok else ("failed" if final else "retrying")
    return attempt


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a given address, with TLS's server name (and certificate check) of the URL's host."""

    def __init__(self, address: str, port: int, server_name: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def post_pinned(target: CallbackTarget, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST body to the target at its checked addresses (the first that accepts a connection), the
    Host header naming the URL's host; returns the status code. Redirects are answers like any other."""
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.netloc != target.host:
        host_header += f":{target.port}"
    last_error: OSError | None = None
    for address in target.addresses:
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(address, target.port, target.host, timeout)
        else:
            connection = http.client.HTTPConnection(address, target.port, timeout=timeout)
        try:
            connection.connect()
        except OSError as error:  # this address refuses: try the next one the name resolved to
            last_error = error
            connection.close()
            continue
        try:
            connection.request("POST", target.target, body=body, headers={"Host": host_header, **headers})
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status
        finally:
            connection.close()
    raise last_error or socket.gaierror("no address to connect to")
