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

from core.jobs import BatchStore, JobStore, get_job_store, is_job_id
from core.routing import WEBHOOK_TASK_NAME
from core.settings import Settings, get_settings
from core.webhooks import (
    SIGNATURE_HEADER,
    CallbackRefused,
    CallbackTarget,
    batch_event,
    check_callback_url,
    due_deliveries,
    job_event,
)
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
    """Send the webhook tasks the job's end makes due: its own, its batch's once the batch's last job
    ended (core.webhooks.due_deliveries). Never raises: a job's outcome must not depend on them."""
    try:
        for target, kind in due_deliveries(store, job_id):
            app.send_task(WEBHOOK_TASK_NAME, args=[target, kind], queue=settings.webhook_queue)
            logger.info("%s %s: webhook queued", kind, target)
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
def deliver(self: Any, target_id: str, kind: str = "job") -> dict[str, Any]:
    """One attempt at POSTing a finished job's (or batch's) event; raises DeliveryFailed to be retried."""
    if not is_job_id(target_id) or kind not in ("job", "batch"):
        return {"outcome": "refused"}
    store = get_job_store()
    found = _event_of(store, target_id, kind)
    if found is None:
        logger.info("%s %s: no record or no callback any more; webhook dropped", kind, target_id)
        return {"outcome": "missing"}
    callback_url, event = found
    number = self.request.retries + 1
    final = self.request.retries >= self.max_retries
    attempt = attempt_delivery(callback_url, event, get_settings(), number, final)
    try:
        if kind == "job":
            store.record_webhook_attempt(target_id, attempt, attempt["outcome"])
        else:
            BatchStore(store.redis).record_webhook_attempt(target_id, attempt, attempt["outcome"])
    except RedisError:
        logger.exception("%s %s: webhook attempt %d not recorded", kind, target_id, number)
    logger.info(
        "%s %s: webhook attempt %d to %s: %s (%s)",
        kind,
        target_id,
        number,
        attempt.get("host"),
        attempt["outcome"],
        attempt.get("status_code") or attempt.get("error"),
    )
    if attempt["outcome"] == "retrying":
        raise DeliveryFailed(attempt.get("error") or f"answered {attempt.get('status_code')}")
    return attempt


def _event_of(store: JobStore, target_id: str, kind: str) -> tuple[str, dict[str, Any]] | None:
    """(callback URL, event) of the job or batch, built afresh from the records; None when gone."""
    if kind == "job":
        record = store.get(target_id)
        if record is None or not record.callback_url:
            return None
        return record.callback_url, job_event(record, record.base_url)
    batch = BatchStore(store.redis).get(target_id)
    if batch is None or not batch.callback_url:
        return None
    return batch.callback_url, batch_event(
        batch, [store.get(job_id) for job_id in batch.job_ids], batch.base_url
    )


def attempt_delivery(
    callback_url: str, event: dict[str, Any], settings: Settings, number: int, final: bool
) -> dict[str, Any]:
    """POST the event once; the attempt as recorded: its outcome (delivered, retrying, failed after
    the last retry, refused), status code or error, and how long it took."""
    started = time.time()
    attempt: dict[str, Any] = {"attempt": number, "at": round(started, 3), "status_code": None, "error": None}
    try:
        target = check_callback_url(callback_url, allow_private=settings.webhook_allow_private)
    except CallbackRefused as error:
        return {**attempt, "outcome": "refused", "error": f"callback_url {error}", "seconds": 0.0}
    attempt["host"] = target.netloc
    body = json.dumps(event, separators=(",", ":")).encode()
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
