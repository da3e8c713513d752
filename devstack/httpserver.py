"""A local HTTP server on 127.0.0.1, answering from a daemon thread: the base of the stand-ins."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client closing a kept-alive connection is not worth a traceback


class LocalHTTPServer:
    """Serve `handler` on 127.0.0.1:`port` (0: any free port) until `stop()`."""

    def serve(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.server = QuietServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
