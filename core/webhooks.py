"""Webhooks, the parts web and worker share: which callback URLs are allowed, the event, its signature.

- ``check_callback_url``: an untrusted URL resolved once and checked (http(s) only; no loopback,
  private, link-local, reserved, multicast or cloud metadata address unless an operator allows
  private ones). It returns the checked addresses: the delivery connects to one of those, never to
  a second resolution of the name (no DNS rebinding). The web calls it at submission (422), the
  webhooks worker again before every attempt.
- ``job_event`` / ``batch_event``: the JSON a finished job's (or batch's) callback receives;
  ``due_deliveries``: which callbacks a job's end makes due (its own, its batch's once all ended).
- ``sign`` / ``signature_header``: ``Atelier-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>``,
  as Stripe signs its webhooks; docs/api.md shows how a receiver verifies it.

Standard library only (plus the job record): the delivery itself is worker/webhooks.py's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from core.jobs import FINISHED, BatchRecord, BatchStore, JobRecord, JobStore

SIGNATURE_HEADER = "Atelier-Signature"
MAX_URL_LENGTH = 2048
# Cloud metadata services (AWS, GCP, Azure; AWS over IPv6; Alibaba): refused even when private
# addresses are allowed, since a receiver never lives there and credentials do.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class CallbackRefused(ValueError):
    """The callback URL may not be called; the message says why, for the submitter."""


@dataclass(frozen=True)
class CallbackTarget:
    """A checked callback URL: where to connect (addresses, port) and what to ask for (host, path)."""

    url: str
    scheme: str
    host: str  # the name as written, for the Host header and TLS's server name
    port: int
    target: str  # path and query, the request line's target
    addresses: tuple[str, ...]  # every address the name resolved to, all allowed

    @property
    def netloc(self) -> str:
        """host[:port] as a status may show it (never the path or query, which may hold a secret)."""
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def resolve(host: str, port: int) -> list[str]:
    """Every address host resolves to (A and AAAA), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_callback_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> CallbackTarget:
    """The URL parsed, its host resolved, every address checked; CallbackRefused says what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackRefused(f"is not a valid URL ({error})") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise CallbackRefused("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("must not carry a user name or password")
    host = parts.hostname
    if not host:
        raise CallbackRefused("has no host")
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as error:
        raise CallbackRefused(f"host {host} cannot be resolved ({error})") from error
    if not addresses:
        raise CallbackRefused(f"host {host} resolves to no address")
    for address in addresses:
        reason = refused_address(ipaddress.ip_address(address.split("%", 1)[0]), allow_private)
        if reason:
            raise CallbackRefused(
                f"host {host} resolves to {address}, {reason}; callbacks go to public addresses only "
                "(ATELIER_WEBHOOK_ALLOW_PRIVATE)"
            )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CallbackTarget(url, scheme, host, port, target, tuple(addresses))


def refused_address(address: IpAddress, allow_private: bool) -> str | None:
    """Why a callback may not connect to address (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return "not an address a server listens on"
    if allow_private:
        return None
    for kind, matches in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
    ):
        if matches:
            return kind
    # Shared (carrier-grade NAT), documentation, benchmarking ranges ...: not reachable publicly.
    return None if address.is_global else "not a public address"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The Atelier-Signature header's value for this body sent at timestamp (Unix seconds)."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _seconds(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(max(0.0, end - start), 3)


def job_event(record: JobRecord, base_url: str) -> dict[str, Any]:
    """The event a finished job's callback receives: the same for every attempt (receivers may
    deduplicate on ``id``); URLs absolute from base_url."""
    base = base_url.rstrip("/")
    job_id = record.id
    return {
        "id": f"{job_id}.{record.status}",
        "type": f"job.{record.status}",
        "job": {
            "id": job_id,
            "status": record.status,
            "error": record.error,
            "result_url": f"{base}/api/jobs/{job_id}/result" if record.has_result else None,
            "status_url": f"{base}/api/jobs/{job_id}",
            "page_url": f"{base}/jobs/{job_id}",
            "created_at": _iso(record.created_at),
            "started_at": _iso(record.started_at),
            "finished_at": _iso(record.finished_at),
            "timings": {
                "queued_seconds": _seconds(record.created_at, record.started_at),
                "running_seconds": _seconds(record.started_at, record.finished_at),
                "engine_seconds": record.stats.get("engine_seconds"),
                "steps": record.stats.get("steps", record.step),
            },
        },
    }


def batch_event(batch: BatchRecord, jobs: list[JobRecord | None], base_url: str) -> dict[str, Any]:
    """The event a batch's callback receives once every job of it has ended (a job that is gone
    reads as expired)."""
    base = base_url.rstrip("/")
    summaries = []
    for job_id, (content, style), record in zip(batch.job_ids, batch.cells, jobs, strict=True):
        summaries.append(
            {
                "id": job_id,
                "content": batch.contents[content],
                "style": batch.styles[style],
                "status": record.status if record is not None else "expired",
                "error": record.error if record is not None else None,
                "result_url": f"{base}/api/jobs/{job_id}/result" if record and record.has_result else None,
            }
        )
    statuses = [summary["status"] for summary in summaries]
    finished = [record.finished_at for record in jobs if record is not None and record.finished_at]
    return {
        "id": f"{batch.id}.finished",
        "type": "batch.finished",
        "batch": {
            "id": batch.id,
            "status_url": f"{base}/api/batches/{batch.id}",
            "page_url": f"{base}/batches/{batch.id}",
            "download_url": f"{base}/api/batches/{batch.id}/download",
            "created_at": _iso(batch.created_at),
            "finished_at": _iso(max(finished)) if finished else None,
            "totals": {"jobs": len(statuses)}
            | {name: statuses.count(name) for name in (*sorted(FINISHED), "expired")},
            "jobs": summaries,
        },
    }


def due_deliveries(store: JobStore, job_id: str) -> list[tuple[str, str]]:
    """The webhook deliveries the end of this job makes due, as (id, kind) task arguments: the job's
    own callback, and its batch's once the batch's last job has ended; each is due once only."""
    due: list[tuple[str, str]] = []
    if store.webhook_due(job_id):
        due.append((job_id, "job"))
    record = store.get(job_id)
    if record is not None and record.batch_id and BatchStore(store.redis).webhook_due(record.batch_id):
        due.append((record.batch_id, "batch"))
    return due
