"""Security headers on every response (ASGI middleware): a strict Content-Security-Policy with no
inline script, no MIME sniffing, no referrer, no framing.

The pages were written for this policy (tests/security/test_csp_in_browser.py checks that a real
Chromium reports no violation). Only the API's /docs and /redoc pages, Swagger UI and ReDoc with an
inline start-up script, get a looser policy (still this server's files only); they show no user data.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# Swagger UI and ReDoc (app/routes/api_docs.py) start with an inline script and set inline styles;
# their files come from this server, so the policy names no other origin.
API_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
API_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def security_headers(path: str) -> dict[str, str]:
    """The headers every response to path carries."""
    policy = API_DOCS_POLICY if path in API_DOCS_PATHS else CONTENT_SECURITY_POLICY
    return {"content-security-policy": policy, **COMMON_HEADERS}


class SecurityHeaders:
    """Adds security_headers() to every HTTP response; a header a route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(name.encode(), value.encode()) for name, value in security_headers(scope["path"]).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
