"""An S3 endpoint that fails on request: a small HTTP proxy in front of a real S3 server (moto's) that answers
503 SlowDown, as AWS does when a bucket is throttled, to the requests a test picks, and passes every other
request through unchanged (moto has no fault injection of its own).

    with FailingS3(s3_server.endpoint_url) as s3:
        s3.fail_writes_to("/result.png")   # PUTs (copies included) of keys ending so: 503 SlowDown
        ...
        s3.recover()
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>atelier-test</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FailingS3:
    """The proxy, on a free loopback port (endpoint_url) in a thread of this process."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self._suffix: str | None = None
        self._lock = threading.Lock()
        self.refused: list[str] = []  # "METHOD path" of every request answered 503
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="failing-s3", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_writes_to(self, suffix: str) -> None:
        """From now on, answer 503 SlowDown to every PUT of a key ending in suffix."""
        with self._lock:
            self._suffix = suffix

    def recover(self) -> None:
        with self._lock:
            self._suffix = None

    def _refuses(self, method: str, path: str) -> bool:
        with self._lock:
            refuse = (
                self._suffix is not None and method == "PUT" and path.split("?")[0].endswith(self._suffix)
            )
            if refuse:
                self.refused.append(f"{method} {path}")
            return refuse

    def __enter__(self) -> FailingS3:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet: the test reports
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._refuses(self.command, self.path):
                    self._answer(503, [("Content-Type", "application/xml")], SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
                    self._answer(response.status, kept, data)
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                # A HEAD answer keeps the object's length and has no body.
                if self.command == "HEAD":
                    length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                    self.send_header("Content-Length", length)
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
