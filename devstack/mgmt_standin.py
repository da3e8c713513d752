"""A local stand-in for the Supabase Management API, reached by the real CLI via a profile file.

The Supabase cloud is the one part tests and the demo cannot run, so this speaks the few
endpoints the CLI uses for functions and secrets, as strictly as the platform:
- an upload with `bundleOnly=true` changes nothing that runs: the function's active version
  moves only when the bulk `PUT /v1/projects/{ref}/functions` lists that bundle; a single
  deploy (no bundleOnly) activates at once;
- 120 requests per minute per project; beyond, 429 with Retry-After;
- every project has the platform's default secrets, with digests of its own;
- project settings (auth, PostgREST, storage, Postgres, pooler, network restrictions, SSL
  enforcement) per project, with the platform's fields, types and ranges (devstack/mgmt_settings.py);
- a project the token cannot see (not in `projects`) is a 404, as is any unknown path.
It records every request, can fail chosen function slugs, and can answer each deploy after a
delay (for benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from devstack import mgmt_settings
from devstack.httpserver import LocalHTTPServer
from devstack.mgmt_settings import ProjectSettings

SETTINGS_PATH = re.compile(r"/v1/projects/([a-z]{20})/(" + "|".join(map(re.escape, mgmt_settings.ROUTES)) + ")")

TOKEN = "sbp_" + "0123456789abcdef" * 2 + "01234567"  # a fake token of the shape the CLI checks
PLATFORM_SECRETS = ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL")
PROJECT_PATH = re.compile(r"/v1/projects/([a-z]{20})(?:/|$)")


def bundle_digest(sources: dict[str, bytes]) -> str:
    """What the platform's ezbr_sha256 stands for: one digest of the code deployed."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    return digest.hexdigest()


@dataclass
class Deploy:
    ref: str
    slug: str
    metadata: dict
    files: list[str]
    sources: dict[str, bytes] = field(default_factory=dict)  # file name -> content uploaded


@dataclass
class ManagementAPI(LocalHTTPServer):
    projects: set[str] = field(default_factory=set)  # refs the token can see
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> name -> digest
    fail_slugs: set[str] = field(default_factory=set)
    deploy_delay: float = 0.0
    deploys: list[Deploy] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, authorization
    functions: dict[str, dict[str, dict]] = field(default_factory=dict)  # ref -> slug -> function
    bundles: dict[str, dict[str, tuple[dict, Deploy]]] = field(default_factory=dict)  # ref -> slug -> uploaded
    auth: dict[str, dict] = field(default_factory=dict)  # ref -> auth config changes (over AUTH_DEFAULTS)
    settings: dict[str, ProjectSettings] = field(default_factory=dict)  # ref -> its other settings
    fail_writes: dict[str, int] = field(default_factory=dict)  # settings path ("postgrest") -> status to answer
    rate_limit: int = 120  # requests per project per rate_window seconds
    rate_window: float = 60.0
    throttled: int = 0  # 429s answered

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.recent: dict[str, list[float]] = {}  # ref -> times of its requests inside the window
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

        self.serve(Handler)

    def write_profile(self, path: Path) -> Path:
        path.write_text(
            f"name: ops-test\napi_url: {self.url}\ndashboard_url: {self.url}/dashboard\nproject_host: supabase.test\n"
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
        if project := PROJECT_PATH.match(url.path):
            if wait := self.over_limit(project[1]):
                return self.reply(handler, 429, {"message": "Too many requests"}, {"Retry-After": str(wait)})
            if project[1] not in self.projects:
                return self.reply(handler, 404, {"message": "Project not found"})
            if re.fullmatch(r"/v1/projects/[a-z]{20}", url.path):
                return self.reply(
                    handler,
                    200,
                    {
                        "id": project[1],
                        "ref": project[1],
                        "name": project[1],
                        "region": "eu-central-1",
                        "status": "ACTIVE_HEALTHY",
                    },
                )
        if (match := re.fullmatch(r"/v1/projects/([a-z]{20})/functions/deploy", url.path)) and method == "POST":
            return self.deploy(handler, match[1], parse_qs(url.query).get("slug", [""])[0], body)
        if match := re.fullmatch(r"/v1/projects/([a-z]{20})/functions", url.path):
            if method == "PUT":  # the CLI's bulk update: activates the bundles it lists
                return self.activate(handler, match[1], body)
            with self.lock:
                return self.reply(handler, 200, list(self.functions.get(match[1], {}).values()))
        if match := SETTINGS_PATH.fullmatch(url.path):
            return self.answer_settings(handler, match[1], match[2], method, body)
        if match := re.fullmatch(r"/v1/projects/([a-z]{20})/secrets", url.path):
            secrets = {name: hashlib.sha256(f"{match[1]}:{name}".encode()).hexdigest() for name in PLATFORM_SECRETS}
            secrets.update(self.secrets.get(match[1], {}))
            return self.reply(
                handler,
                200,
                [{"name": n, "value": v, "updated_at": "2026-01-01T00:00:00Z"} for n, v in sorted(secrets.items())],
            )
        return self.reply(handler, 404, {"message": "Not found"})

    def project_settings(self, ref: str) -> ProjectSettings:
        """The project's settings; its auth changes are `auth[ref]`, which tests may set directly."""
        with self.lock:
            project = self.settings.setdefault(ref, ProjectSettings(ref))
            project.auth = self.auth.setdefault(ref, {})
            return project

    def answer_settings(self, handler: BaseHTTPRequestHandler, ref: str, route: str, method: str, body: bytes) -> None:
        project = self.project_settings(ref)
        if method != "GET" and route in self.fail_writes:
            return self.reply(handler, self.fail_writes[route], {"message": f"injected failure for {route}"})
        with self.lock:
            status, payload = mgmt_settings.answer(project, route, method, body)
        self.reply(handler, status, payload)

    def deploy(self, handler: BaseHTTPRequestHandler, ref: str, slug: str, body: bytes) -> None:
        if self.deploy_delay:
            time.sleep(self.deploy_delay)
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + handler.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        metadata, files, sources = {}, [], {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "metadata":
                metadata = json.loads(part.get_payload(decode=True))
            elif name == "file":
                files.append(part.get_filename())
                sources[part.get_filename()] = part.get_payload(decode=True)
        if slug in self.fail_slugs:
            return self.reply(handler, 400, {"message": f"injected failure for {slug}"})
        bundle_only = parse_qs(urlsplit(handler.path).query).get("bundleOnly") == ["true"]
        with self.lock:
            upload = Deploy(ref, slug, metadata, files, sources)
            active = self.functions.setdefault(ref, {}).get(slug, {})
            pending = self.bundles.setdefault(ref, {}).get(slug)
            version = max(active.get("version", 0), pending[0]["version"] if pending else 0) + 1
            now = int(time.time() * 1000)
            function = {
                "id": f"fn-{slug}",
                "slug": slug,
                "name": slug,
                "status": "ACTIVE",
                "version": version,
                "created_at": active.get("created_at", now),
                "updated_at": now,
                "verify_jwt": metadata.get("verify_jwt", True),
                "ezbr_sha256": bundle_digest(sources),
            }
            if bundle_only:
                self.bundles[ref][slug] = (function, upload)  # uploaded, not serving
            else:
                self.functions[ref][slug] = function
                self.deploys.append(upload)
        self.reply(handler, 201, function)

    def activate(self, handler: BaseHTTPRequestHandler, ref: str, body: bytes) -> None:
        try:
            listed = json.loads(body or b"[]")
            wanted = [(item["slug"], item["version"]) for item in listed]
        except (ValueError, KeyError, TypeError):
            return self.reply(handler, 400, {"message": "body must list functions with slug and version"})
        with self.lock:
            bundles = self.bundles.setdefault(ref, {})
            unknown = [slug for slug, version in wanted if bundles.get(slug, ({}, None))[0].get("version") != version]
            if unknown:
                return self.reply(handler, 400, {"message": f"no uploaded bundle for {', '.join(unknown)}"})
            for slug, _ in wanted:
                function, upload = bundles.pop(slug)
                self.functions.setdefault(ref, {})[slug] = function
                self.deploys.append(upload)
            active = [self.functions[ref][slug] for slug, _ in wanted]
        self.reply(handler, 200, {"functions": active})

    def over_limit(self, ref: str) -> int:
        """Seconds to wait when the project used up its requests of the window, else 0."""
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.recent.get(ref, []) if now - t < self.rate_window]
            if len(recent) >= self.rate_limit:
                self.recent[ref] = recent
                self.throttled += 1
                return max(1, int(self.rate_window - (now - recent[0])) + 1)
            recent.append(now)
            self.recent[ref] = recent
            return 0

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, payload, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
