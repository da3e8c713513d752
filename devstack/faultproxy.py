"""An HTTP proxy in front of a local S3 server that injects faults into a share of requests.

Faults: 500 InternalError, 503 SlowDown, a connection reset before any answer, and a
body cut short after its headers promised more; on request, "corrupt": one byte of an
object's content changed on its way up (PUT) or down (GET), which only an MD5 can tell.
It can also serve the upstream under a path prefix (as Supabase's `/storage/v1/s3`), slow
every request down, and hold back or fail every listing page after the first.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_XML = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault</Message></Error>'
FAULTS = ("500", "slowdown", "reset", "truncate")


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        rate: float = 0.0,
        seed: int = 7,
        prefix: str = "",
        delay: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        budget: int | None = None,
        page_delay: float = 0.0,
        fail_pages: bool = False,
        objects_only: bool = False,
    ) -> None:
        self.upstream_port, self.rate, self.prefix, self.delay, self.faults = upstream_port, rate, prefix, delay, faults
        self.page_delay, self.fail_pages = page_delay, fail_pages  # for listing pages after the first
        self.objects_only = objects_only  # faults for object requests only: listings answered whole
        self.hold: threading.Event | None = None  # while set to an unset Event, object GETs wait for it
        self.answered: list[tuple[float, str, str]] = []  # (time.monotonic(), method, path) as each answer went
        self.budget = budget  # at most this many faults in all (None: no limit)
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: dict[str, int] = {}
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def handle_any(self):
                proxy.forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def pick_fault(self, *, carries_content: bool) -> str | None:
        with self.lock:
            self.requests += 1
            if self.budget is not None and sum(self.injected.values()) >= self.budget:
                return None
            # Only a request a fault can hit draws from the seeded stream: a listing that cannot be
            # corrupted would otherwise take a draw meant for a body, and which body got the fault
            # (and how many did, within the budget) would depend on how threads happen to interleave.
            possible = [fault for fault in self.faults if carries_content or fault != "corrupt"]
            if not possible or self.random.random() >= self.rate:
                return None
            fault = self.random.choice(possible)
            self.injected[fault] = self.injected.get(fault, 0) + 1
            return fault

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        if self.delay:
            time.sleep(self.delay)
        later_page = "continuation-token=" in handler.path
        if later_page:
            time.sleep(self.page_delay)
        object_request = "?" not in handler.path or "partNumber=" in handler.path
        hold = self.hold
        if hold is not None and object_request and handler.command == "GET":
            hold.wait(120)
        fault = (
            self.pick_fault(carries_content=object_request and (handler.command == "GET" or bool(body)))
            if object_request or not self.objects_only
            else None
        )
        if later_page and self.fail_pages:
            fault = "500"
        if fault == "corrupt" and body:
            body = flip_byte(body)
        if fault == "reset":
            # SO_LINGER 0 makes close() send a TCP reset.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if fault in ("500", "slowdown"):
            self.refuse(handler, *((500, "InternalError") if fault == "500" else (503, "SlowDown")))
            return
        path = handler.path
        if self.prefix:
            if not path.startswith(self.prefix):
                handler.send_error(404)
                return
            path = path[len(self.prefix) :] or "/"
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            self.relay(handler, upstream, path, body, fault)
        finally:
            upstream.close()
        self.answered.append((time.monotonic(), handler.command, handler.path))

    def relay(
        self,
        handler: BaseHTTPRequestHandler,
        upstream: http.client.HTTPConnection,
        path: str,
        body: bytes | None,
        fault: str | None,
    ) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection",)}
        upstream.request(handler.command, path, body=body, headers=headers)
        response = upstream.getresponse()
        data = self.rewritten(handler.command, path, response.read())
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        if fault == "corrupt" and data:
            handler.wfile.write(flip_byte(data))
        elif fault == "truncate" and len(data) > 1:
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.connection.close()
            handler.close_connection = True
        else:
            handler.wfile.write(data)

    def refuse(self, handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
        """Answer with S3's error document for `code` instead of the upstream's answer."""
        payload = ERROR_XML.format(code=code).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        self.answered.append((time.monotonic(), handler.command, handler.path))

    def rewritten(self, method: str, path: str, data: bytes) -> bytes:
        """The upstream's answer as this proxy gives it (a subclass hides keys from listings, say)."""
        return data


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
