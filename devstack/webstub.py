"""A local web server standing for an environment's frontend and edge functions (for `inv smoke`).

Answers by path and method from a routing table; anything unrouted gets `default`. Records
every request it answered.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from devstack.httpserver import LocalHTTPServer


class WebStub(LocalHTTPServer):
    def __init__(self, routes: dict[str, int] | None = None, default: int = 200, port: int = 0) -> None:
        self.routes = dict(routes or {})  # "METHOD /path" or "/path" -> status
        self.default = default
        self.seen: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                path = self.path.split("?")[0]
                stub.seen.append((self.command, path))
                status = stub.routes.get(f"{self.command} {path}", stub.routes.get(path, stub.default))
                body = f"{status}\n".encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_OPTIONS = do_HEAD = answer

        self.serve(Handler, port)
