"""A TCP proxy that cuts the connection after a number of bytes, to kill a database session mid-way."""

from __future__ import annotations

import socket
import threading


class CuttingProxy:
    def __init__(
        self, upstream_port: int, *, cut_upstream_after: int | None = None, cut_downstream_after: int | None = None
    ) -> None:
        self.upstream_port = upstream_port
        self.limits = {"up": cut_upstream_after, "down": cut_downstream_after}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        self.sent = {"up": 0, "down": 0}
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.sockets += [client, server]
            for direction, src, dst in (("up", client, server), ("down", server, client)):
                threading.Thread(target=self.pump, args=(direction, src, dst, client, server), daemon=True).start()

    def pump(self, direction: str, src: socket.socket, dst: socket.socket, *both: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.sent[direction] += len(data)
                    over = self.limits[direction] is not None and self.sent[direction] > self.limits[direction]
                if over:
                    with self.lock:
                        self.cuts += 1
                    for sock in both:  # shutdown wakes the other pump blocked in recv; close alone would not
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        sock.close()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in both:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                sock.close()
