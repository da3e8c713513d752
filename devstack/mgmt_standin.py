"""A local stand-in for the Supabase Management API, reached by the real CLI via a profile file.

The Supabase cloud is the one part tests and the demo cannot run, so this speaks the few
endpoints the CLI uses for functions and secrets, records every request, can fail chosen
function slugs, and can answer each deploy after a delay (for benchmarks).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TOKEN = "sbp_" + "0123456789abcdef" * 2 + "01234567"  # a fake token of the shape the CLI checks


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the CLI closing a kept-alive connection is not worth a traceback


@dataclass
class Deploy:
    ref: str
    slug: str
    metadata: dict
    files: list[str]


@dataclass
class ManagementAPI:
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> name -> digest
    fail_slugs: set[str] = field(default_factory=set)
    deploy_delay: float = 0.0
    deploys: list[Deploy] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, authorization
    functions: dict[str, dict[str, dict]] = field(default_factory=dict)  # ref -> slug -> function

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                api.handle(self, "GET")

            def do_POST(self):
                api.handle(self, "POST")

            def do_PATCH(self):
                api.handle(self, "PATCH")

            def do_PUT(self):
                api.handle(self, "PUT")

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write_profile(self, path: Path) -> Path:
        path.write_text(
            "name: ops-test\n"
            f"api_url: {self.url}\n"
            f"dashboard_url: {self.url}/dashboard\n"
            "project_host: supabase.test\n"
        )
        return path

    def deployed(self, ref: str | None = None) -> list[str]:
        with self.lock:
            return sorted(d.slug for d in self.deploys if ref is None or d.ref == ref)

    # ------------------------------------------------------------ handlers

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, url.path, handler.headers.get("Authorization", "")))
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(handler, 401, {"message": "Unauthorized"})
        if (match := re.fullmatch(r"/v1/projects/([a-z]{20})/functions/deploy", url.path)) and method == "POST":
            return self.deploy(handler, match[1], parse_qs(url.query).get("slug", [""])[0], body)
        if match := re.fullmatch(r"/v1/projects/([a-z]{20})/functions", url.path):
            if method == "PUT":  # the CLI's bulk update that activates what it just deployed
                return self.reply(handler, 200, {"functions": json.loads(body or b"[]")})
            with self.lock:
                return self.reply(handler, 200, list(self.functions.get(match[1], {}).values()))
        if match := re.fullmatch(r"/v1/projects/([a-z]{20})/secrets", url.path):
            secrets = self.secrets.get(match[1], {})
            return self.reply(handler, 200, [{"name": n, "value": v} for n, v in sorted(secrets.items())])
        return self.reply(handler, 404, {"message": "Not found"})

    def deploy(self, handler: BaseHTTPRequestHandler, ref: str, slug: str, body: bytes) -> None:
        if self.deploy_delay:
            time.sleep(self.deploy_delay)
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + handler.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        metadata, files = {}, []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "metadata":
                metadata = json.loads(part.get_payload(decode=True))
            elif name == "file":
                files.append(part.get_filename())
        if slug in self.fail_slugs:
            return self.reply(handler, 400, {"message": f"injected failure for {slug}"})
        with self.lock:
            self.deploys.append(Deploy(ref, slug, metadata, files))
            functions = self.functions.setdefault(ref, {})
            version = functions.get(slug, {}).get("version", 0) + 1
            now = int(time.time() * 1000)
            functions[slug] = {"id": f"fn-{slug}", "slug": slug, "name": slug, "status": "ACTIVE",
                               "version": version, "created_at": now, "updated_at": now,
                               "verify_jwt": metadata.get("verify_jwt", True)}
            result = dict(functions[slug])
        self.reply(handler, 201, result)

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
