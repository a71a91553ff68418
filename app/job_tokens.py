"""Job tokens: only whoever submitted a job may cancel or delete it.

POST /api/jobs (and the HTML form) creates a random token, returns it once and keeps only its
SHA-256 in the job record (a 256-bit random token needs no slow hash: nothing to brute-force).
A request proves it holds the token with any one of:
  X-Job-Token: <token>
  Authorization: Bearer <token>
  the cookie COOKIE_NAME, set at submission with Path=/jobs/{id} and Path=/api/jobs/{id}
  (HttpOnly, SameSite=Strict), so the job's page can cancel with no JavaScript change and another
  site can never make the browser send it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "atelier_job_token"
TOKEN_HEADER = "x-job-token"


def new_job_token() -> str:
    """A fresh token: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_job_token(token: str) -> str:
    """What the job record keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str | None, stored_hash: str | None) -> bool:
    """True when token hashes to stored_hash (constant time); a job without a stored hash matches nothing."""
    if not token or not stored_hash:
        return False
    return hmac.compare_digest(hash_job_token(token), stored_hash)


def presented_tokens(request: Request) -> list[str]:
    """Every token the request carries (header, bearer, cookie), in that order."""
    tokens = []
    if header := request.headers.get(TOKEN_HEADER, "").strip():
        tokens.append(header)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    if cookie := request.cookies.get(COOKIE_NAME):
        tokens.append(cookie)
    return tokens


def request_holds_token(request: Request, stored_hash: str | None) -> bool:
    """True when any token the request carries matches the job's stored hash."""
    return any(token_matches(token, stored_hash) for token in presented_tokens(request))


def set_job_token_cookies(
    response: Response, request: Request, job_id: str, token: str, max_age_seconds: int
) -> None:
    """Let the submitting browser cancel or delete the job: one cookie per path the job lives under."""
    for path in (f"/jobs/{job_id}", f"/api/jobs/{job_id}"):
        response.set_cookie(
            COOKIE_NAME,
            token,
            max_age=max_age_seconds,
            path=path,
            # Secure only where the request came over HTTPS (behind a TLS proxy with --proxy-headers):
            # a Secure cookie would never come back over the plain-HTTP loopback of `make run`.
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
