"""A TLS front for a local PostgreSQL that asks clients for their password in clear text.

What a man in the middle does to a client that takes any certificate: a connection whose
`application_name` starts with `relay_prefix` passes through to the real server (there the
toolkit's psycopg sessions authenticate by SCRAM as usual); every other client (pg_dump, psql,
the Supabase CLI) is asked for a clear-text password, and whatever it sends is recorded.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CLEARTEXT_PASSWORD = b"R" + struct.pack("!ii", 8, 3)
REFUSED = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"


class CleartextProxy:
    def __init__(self, upstream_port: int, context: ssl.SSLContext, *, host: str, relay_prefix: str = "ops") -> None:
        self.upstream_port = upstream_port
        self.context = context
        self.relay_prefix = relay_prefix
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.asked: list[str] = []  # application names of the clients asked for a clear-text password
        self.passwords: list[tuple[str, bytes]] = []  # what they answered
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:
        sock: socket.socket = client
        try:
            while True:
                length, code = struct.unpack("!ii", receive(sock, 8))
                if code == GSSENC_REQUEST:
                    sock.sendall(b"N")
                elif code == SSL_REQUEST:
                    sock.sendall(b"S")
                    sock = self.context.wrap_socket(sock, server_side=True)
                else:
                    break
            startup = struct.pack("!ii", length, code) + receive(sock, length - 8)
            fields = startup[8:].split(b"\0")
            params = dict(zip(fields[0::2], fields[1::2], strict=False))
            application = params.get(b"application_name", b"").decode(errors="replace")
            if application.startswith(self.relay_prefix):
                self.relay(sock, startup)
                return
            self.asked.append(application or "(none)")
            sock.sendall(CLEARTEXT_PASSWORD)
            if receive(sock, 1) == b"p":
                (size,) = struct.unpack("!i", receive(sock, 4))
                self.passwords.append((application, receive(sock, size - 4).rstrip(b"\0")))
            sock.sendall(b"E" + struct.pack("!i", len(REFUSED) + 4) + REFUSED)
        except (OSError, ValueError, struct.error):
            pass  # a client that hangs up (as one that refuses to answer does) ends its connection
        finally:
            sock.close()

    def relay(self, client: socket.socket, startup: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as server:
            server.sendall(startup)
            other = {client: server, server: client}
            while True:
                ready, _, _ = select.select(list(other), [], [], 60)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    other[source].sendall(data)
                    while isinstance(source, ssl.SSLSocket) and source.pending():  # decrypted, unseen by select
                        other[source].sendall(source.recv(65536))

    def stop(self) -> None:
        self.listener.close()


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("the client hung up")
        data += chunk
    return data
