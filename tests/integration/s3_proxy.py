"""A recording, fault-injecting HTTP proxy in front of the moto server.

Tests point an AWS connection's endpoint_url at it to count the requests that reach S3 (PUTs of
objects and parts) and to make chosen requests fail (HTTP 500, or a connection cut mid-body).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: str
    size: int

    @property
    def key(self) -> str:
        """bucket/key of a path-style request."""
        return self.path.lstrip("/")

    @property
    def is_object_write(self) -> bool:
        """A PutObject or an UploadPart (not CreateMultipartUpload / Complete, which are POSTs)."""
        return self.method == "PUT" and "/" in self.key.strip("/")


@dataclass
class S3Proxy:
    upstream: str
    requests: list[Request] = field(default_factory=list)
    # fault(request) -> None (forward), "500" (answer InternalError), "cut" (close mid-request)
    fault: Callable[[Request], str | None] | None = None
    _server: ThreadingHTTPServer | None = None
    url: str = ""

    def start(self) -> S3Proxy:
        proxy = self
        target = urlsplit(self.upstream)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                path, _, query = self.path.partition("?")
                body = self._body()
                request = Request(self.command, path, query, len(body))
                with lock:
                    proxy.requests.append(request)
                action = proxy.fault(request) if proxy.fault else None
                if action == "cut":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "500":
                    payload = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                            self.send_header(key, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        self.requests.clear()
        self.fault = None

    def object_writes(self, bucket: str) -> list[Request]:
        return [r for r in self.requests if r.is_object_write and r.key.startswith(f"{bucket}/")]
