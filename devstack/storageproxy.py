"""Supabase Storage's S3 dialect in front of moto's server, as strict as Storage itself.

Measured against Storage's own server (supabase/storage, `src/http/routes/s3/`,
`src/storage/protocols/s3/`), where it answers differently from a plain S3 server:
- the endpoint lives under `/storage/v1/s3`;
- DeleteObjects without `Content-Type: application/xml` is a 400 ("must have required
  property 'Body'"): the body is not read;
- a single PutObject over the project's standard-upload limit is a 413 EntityTooLarge;
- keys with non-ASCII characters or any of ``% ~ # { } ^ ` | [ ] < > \\ "`` are a 400 InvalidKey;
- error documents carry `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` (botocore then
  finds no Code and no Message);
- behind S3, objects of 16 MiB and more are stored in 16 MiB parts: their ETag is `<hash>-N`;
- user metadata keys come back lower-cased, non-ASCII values are dropped (reported in
  `x-amz-missing-meta`), Content-Disposition and Content-Language are not stored.
moto does not check signatures; this proxy does not either (rclone's server covers keys).
"""

from __future__ import annotations

import hashlib
import http.client
import re
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from devstack.faultproxy import FaultProxy

PREFIX = "/storage/v1/s3"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
PART = 16 << 20
FORBIDDEN_KEY = re.compile(r'[^\x00-\x7f]|[%~#{}^`|\[\]<>\\"]')
NOT_STORED = {"content-disposition", "content-language"}


def storage_etag(etag: str, size: int) -> str:
    """What Storage reports for an object stored in 16 MiB parts (never a plain MD5)."""
    clean = etag.strip('"')
    if size < PART:
        return clean
    return f"{hashlib.md5(clean.encode()).hexdigest()}-{-(-size // PART)}"


class StorageProxy(FaultProxy):
    def __init__(self, upstream_port: int, *, put_limit: int = 50 << 20, **kwargs: object) -> None:
        super().__init__(upstream_port, prefix=PREFIX, **kwargs)  # type: ignore[arg-type]
        self.put_limit = put_limit
        self.missing_meta: dict[tuple[str, str], int] = {}
        self.seen: list[tuple[str, str, int]] = []  # (method, path, status) of every request answered
        self.payload_hashes: list[tuple[str, str, str]] = []  # (method, path, x-amz-content-sha256) as sent

    def error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        payload = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error xmlns="{S3_NS}"><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def relay(
        self,
        handler: BaseHTTPRequestHandler,
        upstream: http.client.HTTPConnection,
        path: str,
        body: bytes | None,
        fault: str | None,
    ) -> None:
        parts = urlsplit(path)
        query = parse_qs(parts.query, keep_blank_values=True)
        bucket, _, key = unquote(parts.path.lstrip("/")).partition("/")
        method, headers = handler.command, dict(handler.headers.items())
        # Storage signs this header's value as sent and never hashes the body (signature-v4.ts).
        self.payload_hashes.append((method, path, handler.headers.get("x-amz-content-sha256", "")))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        refusal = None
        if method == "POST" and "delete" in query and not content_type.startswith("application/xml"):
            refusal = (400, "InvalidRequest", "must have required property 'Body'")
        elif key and method in ("PUT", "POST") and FORBIDDEN_KEY.search(key):
            refusal = (400, "InvalidKey", f"Invalid key: {key}")
        elif (
            method == "PUT"
            and key
            and "partNumber" not in query
            and not any(k.lower() == "x-amz-copy-source" for k in headers)
            and len(body or b"") > self.put_limit
        ):
            refusal = (413, "EntityTooLarge", "The object exceeded the maximum allowed size")
        if refusal:
            self.seen.append((method, path, refusal[0]))
            self.error(handler, *refusal)
            return
        if method in ("PUT", "POST") and key:
            headers = self.stored_headers(headers, bucket, key)
        upstream.request(method, path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.seen.append((method, path, response.status))
        out = {
            k: v
            for k, v in response.getheaders()
            if k.lower() not in ("transfer-encoding", "connection", "content-length")
        }
        if response.status >= 300 and data.startswith(b"<?xml") and b"<Error>" in data:
            data = data.replace(b"<Error>", f'<Error xmlns="{S3_NS}">'.encode(), 1)
        elif "list-type" in query:
            data = re.sub(
                rb"<ETag>([^<]*)</ETag>(.*?)<Size>(\d+)</Size>",
                lambda m: (
                    b"<ETag>&quot;"
                    + storage_etag(m[1].decode().replace("&quot;", ""), int(m[3])).encode()
                    + b"&quot;</ETag>"
                    + m[2]
                    + b"<Size>"
                    + m[3]
                    + b"</Size>"
                ),
                data,
                flags=re.S,
            )
        else:
            etag_header = next((k for k in out if k.lower() == "etag"), None)
            size = len(body or b"") if method == "PUT" else int(response.getheader("Content-Length") or 0)
            if etag_header and "partNumber" not in query and "uploadId" not in query:
                out[etag_header] = f'"{storage_etag(out[etag_header], size)}"'
            if method in ("GET", "HEAD") and self.missing_meta.get((bucket, key)):
                out["x-amz-missing-meta"] = str(self.missing_meta[(bucket, key)])
        handler.send_response(response.status)
        for name, value in out.items():
            handler.send_header(name, value)
        length = response.getheader("Content-Length") if method == "HEAD" else None
        handler.send_header("Content-Length", length or str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def stored_headers(self, headers: dict[str, str], bucket: str, key: str) -> dict[str, str]:
        """What Storage keeps of an upload's headers: lower-cased metadata, ASCII values only."""
        kept, missing = {}, 0
        for name, value in headers.items():
            lower = name.lower()
            if lower in NOT_STORED:
                continue
            if lower.startswith("x-amz-meta-"):
                if not value.isascii():
                    missing += 1
                    continue
                name = lower
            kept[name] = value
        self.missing_meta[(bucket, key)] = missing
        return kept
