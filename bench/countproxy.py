"""A TCP proxy in front of an S3 server that records each object GET passing through it.

"Objects read from the source" is then what the server was asked for, not what the tool says it
did. Requests are parsed as HTTP/1.1 on their way up (head, then a Content-Length body); answers
come back untouched. A GET of `/<bucket>/<key>` without `list-type` in its query is an object read.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from urllib.parse import unquote, urlsplit

CHUNK = 256 << 10


class CountingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.reads: Counter[str] = Counter()  # "bucket/key" -> GETs of it
        self.requests = 0
        self.unparsed = 0  # requests whose body could not be delimited (the count would be unsure)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.reads.clear()
        self.requests = self.unparsed = 0

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._requests(reader, up_writer), self._copy(up_reader, writer))

    def _note(self, head: bytes) -> int:
        """Record one request head; its body's length (-1 when it cannot be told)."""
        request_line, *fields = head.decode("latin-1").split("\r\n")
        method, target = request_line.split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields if f)}
        self.requests += 1
        url = urlsplit(target)
        path = unquote(url.path).lstrip("/")
        if method == "GET" and "/" in path and "list-type" not in url.query:
            self.reads[path] += 1
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.unparsed += 1
            return -1
        return int(headers.get("content-length", "0"))

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                body = self._note(head)
                writer.write(head)
                if body < 0:  # the rest of this connection goes up as it is
                    await self._copy(reader, writer)
                    return
                while body:
                    data = await reader.read(min(body, CHUNK))
                    if not data:
                        break
                    body -= len(data)
                    writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(5)
