"""The S3 calls the toolkit makes, over a lean HTTP client: botocore signs, http.client sends.

boto3's client costs about 2.5 ms of CPU per request (model-driven serialisation, event
hooks, response parsing), serialised by the GIL across the copy threads, and half a
second to create. Our calls are a handful of fixed shapes, so each is built here by hand
and signed with botocore's own SigV4 signer (no crypto of ours), then sent on one kept-alive
connection per thread (http.client: a third of httpx's CPU per request). What Supabase Storage's
S3 dialect needs is built in: path-style URLs, no Content-MD5, DeleteObjects declared as
XML, error codes read whatever the XML namespace.
"""

from __future__ import annotations

import base64
import functools
import http.client
import random
import ssl
import threading
import time
import xml.etree.ElementTree as ElementTree
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, unquote_plus, urlsplit

from ops.errors import OperationFailed
from ops.upload_ledger import UploadLedger

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
AUTH_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthorizationHeaderMalformed", "AccessDenied",
              "InvalidSignature", "ExpiredToken"}
RETRY_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"}
BACKOFF = 0.05  # seconds before the first retry; doubles, with jitter, up to MAX_BACKOFF
MAX_BACKOFF = 2.0
MAX_ERROR_BODY = 64 << 10  # an error document is a few hundred bytes: never hold more of one


class S3Error(OperationFailed):
    """An error answer from the server: one line that names the endpoint, the call and the answer."""

    def __init__(self, status: int, code: str, message: str, operation: str, where: str = "") -> None:
        super().__init__(f"{where + ': ' if where else ''}{operation} answered {status} {code}: {message}")
        self.status, self.code, self.message, self.operation = status, code, message, operation

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUS or self.code in RETRY_CODES


class Unreachable(OperationFailed):
    """No answer from the endpoint after every attempt (name not found, refused, reset, timed out)."""


def error_from_body(body: bytes) -> tuple[str, str]:
    """Code and Message of an S3 error document, whatever its XML namespace."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return "", ""
    found = {element.tag.rpartition("}")[2]: (element.text or "").strip() for element in root.iter()}
    return found.get("Code", ""), found.get("Message", "")


def parse_xml(body: bytes, operation: str, where: str = "", root: str = "") -> ElementTree.Element:
    """An answer's XML document, whose root element must start with `root`; anything else (an HTML
    page, a proxy's message: XML or not) is an S3Error, never read as an empty answer."""
    try:
        document = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        document = None
    # By prefix: servers differ in the suffix (rclone answers <InitiateMultipartUpload>, AWS ...Result).
    if document is None or not document.tag.rpartition("}")[2].startswith(root):
        raise S3Error(200, "NotS3", f"the answer is not an S3 XML document ({body[:40]!r}); is this the "
                      "S3 endpoint?", operation, where)
    return document


def xml_items(body: bytes, tag: str, operation: str = "", where: str = "", root: str = "") -> Iterator[dict[str, str]]:
    """The children of every `tag` element, by local name (S3 answers are namespaced)."""
    for element in parse_xml(body, operation, where, root).iter():
        if element.tag.rpartition("}")[2] == tag:
            yield {child.tag.rpartition("}")[2]: child.text or "" for child in element}


def xml_text(body: bytes, tag: str, operation: str = "", where: str = "", root: str = "") -> str | None:
    for element in parse_xml(body, operation, where, root).iter():
        if element.tag.rpartition("}")[2] == tag:
            return element.text or ""
    return None


def listing_page(body: bytes, where: str = "") -> tuple[dict[str, str], list[dict[str, str]]]:
    """A ListObjectsV2 page, parsed once: its own fields, and the fields of each of its Contents."""
    fields: dict[str, str] = {}
    contents: list[dict[str, str]] = []
    for child in parse_xml(body, "ListObjectsV2", where, "ListBucketResult"):
        tag = child.tag.rpartition("}")[2]
        if tag == "Contents":
            contents.append({field.tag.rpartition("}")[2]: field.text or "" for field in child})
        else:
            fields[tag] = child.text or ""
    return fields, contents


@dataclass
class Listed:
    key: str
    size: int
    etag: str


def tls_context() -> ssl.SSLContext:
    """Certificates verified against certifi's roots (as boto3 did) and the system's (a company CA)."""
    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return context
    context.load_verify_locations(cafile=certifi.where())
    return context


@dataclass(frozen=True)
class Keys:
    """What botocore's signer reads of a set of credentials (botocore.credentials costs 50 ms to import)."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never the secret, whatever prints it
        return f"Keys(access_key={self.access_key!r})"


class Response:
    """An answer: status, headers (names lower-cased), and the body, read whole or streamed raw."""

    def __init__(self, raw: http.client.HTTPResponse, release: Callable[[bool], None]) -> None:
        self.status = raw.status
        self.headers = {name.lower(): value for name, value in raw.getheaders()}
        self._raw, self._release, self._content = raw, release, b""

    @property
    def content(self) -> bytes:
        return self._content

    def read(self) -> bytes:
        self._content = self._raw.read()
        self._release(True)
        return self._content

    def read_capped(self, limit: int) -> bytes:
        """At most `limit` bytes of the body; the connection is dropped when more was left unread."""
        self._content = self._raw.read(limit)
        self._release(self._raw.read(1) == b"" if len(self._content) == limit else True)
        return self._content

    def iter_raw(self, size: int) -> Iterator[bytes]:
        """The body as sent (never decoded); an answer cut short raises http.client.IncompleteRead."""
        while chunk := self._raw.read(size):
            yield chunk

    def close(self) -> None:
        # A body read to its end leaves the connection reusable; one left half-read cannot be.
        self._release(self._raw.isclosed())


class S3:
    """One S3 endpoint with one set of keys: thread-safe, one kept-alive connection per thread."""

    def __init__(self, url: str, region: str, key_id: str, secret: str, *, max_pool: int = 16,
                 timeout: float = 10, attempts: int = 8,
                 refused: Callable[[S3Error], Exception] | None = None,
                 untrusted: Callable[[ssl.SSLCertVerificationError], Exception] | None = None,
                 where: str = "", ledger: UploadLedger | None = None) -> None:
        del max_pool  # one connection per thread that calls: the thread pool is the limit
        self.base = url.rstrip("/")
        parts = urlsplit(self.base)
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname or "", parts.port
        self._prefix = parts.path  # Storage serves S3 under /storage/v1/s3
        # Sent and signed as given (the signer would parse it out of every URL twice).
        self._host_header = parts.netloc.rpartition("@")[2]
        self.region = region
        self.attempts = attempts
        self.connect_timeout, self.read_timeout = timeout, 60.0
        self.refused = refused  # what a refusal of the keys becomes (401, 403, a signature error)
        self.untrusted = untrusted  # what a certificate that does not verify becomes (never retried)
        self.where = where or f"storage at {self.base}"  # how errors name this endpoint
        self.ledger = ledger  # where open multipart uploads are noted, for a later run to abort a killed one's
        self._credentials = Keys(key_id, secret)
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()

    # ------------------------------------------------------------ the wire

    def _url(self, bucket: str, key: str, query: dict[str, str] | None) -> str:
        path = "/" + quote(bucket, safe="") + ("/" + quote(key, safe="/~") if key else "")
        url = self.base + path
        if query:
            # Encoded once, sorted as SigV4's canonical query string wants: what is signed is what is sent.
            url += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
        return url

    def _signed(self, method: str, url: str, headers: dict[str, str], body: bytes, *,
                content_unsigned: bool = False) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers={"Host": self._host_header, **headers}, data=body)
        signer(content_unsigned)(self._credentials, "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.connect_timeout,
                                                   context=tls_context())
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout)
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _release(self, reusable: bool) -> None:
        if not reusable:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

    def send(self, method: str, bucket: str, key: str = "", *, operation: str, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, body: bytes = b"", stream: bool = False,
             ok: tuple[int, ...] = (200, 204), content: bool = False) -> Response:
        """One call, retried on network failures, throttling and server errors; an S3Error otherwise.

        Bodies are bytes (at most one part, 16 MiB): a retry sends them again as they are.
        With `stream`, the caller reads the answer's body and closes it. A `content` body (an
        object's bytes) is signed as UNSIGNED-PAYLOAD: see `signer`.
        """
        url = self._url(bucket, key, query)
        target = url[len(self.base) - len(self._prefix):]  # the path and query, as signed
        for attempt in range(self.attempts):
            # Signed anew on every attempt: x-amz-date moves on.
            signed = self._signed(method, url, dict(headers or {}), body, content_unsigned=content)
            try:
                conn = self._connection()
                conn.request(method, target, body=body if body or method in ("PUT", "POST") else None,
                             headers=signed)
                response = Response(conn.getresponse(), self._release)
                if method == "HEAD" or (response.status in ok and not stream):
                    response.read()  # an answer cut short is retried like a lost connection
            except ssl.SSLCertVerificationError as error:
                self._release(False)
                if self.untrusted:
                    raise self.untrusted(error) from None
                raise
            except (OSError, http.client.HTTPException) as error:
                self._release(False)
                if attempt == self.attempts - 1:
                    raise Unreachable(f"{self.where}: cannot reach it ({reason(error)}) after {self.attempts} "
                                      "attempts; check storage_url and the network") from None
                self._pause(attempt)
                continue
            if response.status in ok:
                return response
            failure = self._failure(response, operation)
            if self.refused and (failure.status in (401, 403) or failure.code in AUTH_CODES):
                raise self.refused(failure)
            if not failure.retryable or attempt == self.attempts - 1:
                raise failure
            self._pause(attempt)
        raise AssertionError("unreachable")

    def _failure(self, response: Response, operation: str) -> S3Error:
        try:
            body = response.content or response.read_capped(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            self._release(False)
            body = b""
        code, message = error_from_body(body)
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "error"
        return S3Error(response.status, code or str(response.status), message or phrase, operation, self.where)

    @staticmethod
    def _pause(attempt: int) -> None:
        delay = min(MAX_BACKOFF, BACKOFF * 2**attempt)
        time.sleep(delay * (0.5 + random.random() / 2))

    # ------------------------------------------------------------ the calls

    def bucket_listable(self, bucket: str) -> bool:
        """Whether the bucket exists, asked by listing one key: unlike HeadBucket's empty answer, the
        listing's XML shows the endpoint speaks S3 (a web page answering 200 to everything does not)."""
        try:
            page = self.send("GET", bucket, operation="ListObjectsV2", query={"list-type": "2", "max-keys": "1"})
        except S3Error as error:
            if error.status == 404 or error.code in ("NoSuchBucket", "NotFound"):
                return False
            raise
        listing_page(page.content, self.where)
        return True

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[Listed]:
        """Every object of a bucket (under `prefix`), a page (up to 1,000 keys) at a time."""
        token = None
        seen: set[str] = set()
        while True:
            query = {"list-type": "2", "max-keys": "1000", "encoding-type": "url"}
            if prefix:
                query["prefix"] = prefix
            if token:
                query["continuation-token"] = token
            page = self.send("GET", bucket, operation="ListObjectsV2", query=query).content
            fields, contents = listing_page(page, self.where)
            # Keys come URL-encoded only when the server says so (XML cannot carry every character);
            # servers write a space as "+" and a plus as %2B, so "+" decodes as botocore decodes it.
            encoded = fields.get("EncodingType", "").lower() == "url"
            for item in contents:
                key = unquote_plus(item.get("Key", "")) if encoded else item.get("Key", "")
                yield Listed(key, int(item.get("Size") or 0), item.get("ETag", ""))
            token = fields.get("NextContinuationToken")
            if fields.get("IsTruncated", "").lower() != "true" or not token:
                return
            if token in seen:  # a server that hands out a token twice would list forever
                raise S3Error(200, "RepeatedToken", f"listing {bucket} returned a continuation token it had "
                              "already given; the listing would never end", "ListObjectsV2", self.where)
            seen.add(token)

    def head_object(self, bucket: str, key: str) -> dict[str, str]:
        return self.send("HEAD", bucket, key, operation="HeadObject").headers

    @contextmanager
    def get_object(self, bucket: str, key: str) -> Iterator[Response]:
        """The object's answer, its body unread (read it raw: an encoded object is copied as stored)."""
        response = self.send("GET", bucket, key, operation="GetObject", stream=True,
                             headers={"Accept-Encoding": "identity"})
        try:
            yield response
        finally:
            response.close()

    def put_object(self, bucket: str, key: str, body: bytes, headers: dict[str, str]) -> str:
        """Upload in one request; returns the ETag the server gave."""
        answer = self.send("PUT", bucket, key, operation="PutObject", headers=headers, body=body, content=True)
        return answer.headers.get("etag", "")

    def copy_object(self, bucket: str, key: str, source_key: str) -> str:
        """A server-side copy within the bucket (no bytes through here); returns the new object's ETag."""
        source = "/" + quote(bucket, safe="") + "/" + quote(source_key, safe="/~")
        answer = self.send("PUT", bucket, key, operation="CopyObject", headers={"x-amz-copy-source": source})
        return xml_text(answer.content, "ETag", "CopyObject", self.where, "CopyObject") or ""

    def multipart_upload(self, bucket: str, key: str, parts: Iterator[bytes], headers: dict[str, str]) -> str:
        """Upload in parts (aborted, so no part is left behind, when any step fails); returns the final ETag."""
        created = self.send("POST", bucket, key, operation="CreateMultipartUpload", query={"uploads": ""},
                            headers=headers).content
        upload_id = xml_text(created, "UploadId", "CreateMultipartUpload", self.where, "InitiateMultipartUpload")
        if not upload_id:
            raise S3Error(500, "MalformedXML", "no UploadId in the answer", "CreateMultipartUpload", self.where)
        if self.ledger:
            self.ledger.started(bucket, key, upload_id)
        done: list[tuple[int, str]] = []
        try:
            for number, part in enumerate(parts, start=1):
                answer = self.send("PUT", bucket, key, operation="UploadPart", body=part, content=True,
                                   query={"partNumber": str(number), "uploadId": upload_id})
                done.append((number, answer.headers.get("etag", "")))
            listing = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_escape(etag)}</ETag></Part>"
                              for n, etag in done)
            document = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{listing}' \
                       "</CompleteMultipartUpload>"
            answer = self.send("POST", bucket, key, operation="CompleteMultipartUpload", body=document.encode(),
                               query={"uploadId": upload_id}, headers={"Content-Type": "application/xml"})
            if b"<Error" in answer.content[:200]:  # S3 may report a failed completion inside a 200
                code, message = error_from_body(answer.content)
                raise S3Error(500, code or "InternalError", message, "CompleteMultipartUpload", self.where)
            operation = "CompleteMultipartUpload"
            etag = xml_text(answer.content, "ETag", operation, self.where, operation) or ""
        except BaseException:
            if self.abort_upload(bucket, key, upload_id) and self.ledger:
                self.ledger.finished(upload_id)
            raise
        if self.ledger:
            self.ledger.finished(upload_id)
        return etag

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort a multipart upload (one already gone counts as aborted); False when the server could not be told."""
        try:
            self.send("DELETE", bucket, key, operation="AbortMultipartUpload", query={"uploadId": upload_id},
                      ok=(200, 204, 404))
            return True
        except (OSError, http.client.HTTPException, OperationFailed):  # the upload's own failure is reported
            return False

    def delete_objects(self, bucket: str, keys: list[str]) -> list[dict[str, str]]:
        """Delete up to 1,000 keys in one call; returns the per-key errors."""
        listing = "".join(f"<Object><Key>{_xml_escape(k)}</Key></Object>" for k in keys)
        document = f"<Delete><Quiet>true</Quiet>{listing}</Delete>".encode()
        # Storage reads the body only when declared as XML; AWS wants a checksum (Storage takes no Content-MD5).
        crc = base64.b64encode(zlib.crc32(document).to_bytes(4, "big")).decode()
        answer = self.send("POST", bucket, operation="DeleteObjects", query={"delete": ""}, body=document,
                           headers={"Content-Type": "application/xml", "x-amz-checksum-crc32": crc})
        return list(xml_items(answer.content, "Error", "DeleteObjects", self.where, "Delete"))


@functools.cache
def signer(content_unsigned: bool) -> type:
    """botocore's SigV4 signer for S3; with `content_unsigned`, the body's hash is UNSIGNED-PAYLOAD.

    Supabase Storage puts the x-amz-content-sha256 header into the signature as sent and never
    hashes the body (supabase/storage, src/storage/protocols/s3/signature-v4.ts, getPayloadHash),
    and neither does rclone serve s3: an object's sha256 would cost a millisecond of CPU per MiB
    and check nothing. What arrived is checked by its ETag instead (`ops.s3.upload`), and https
    protects it on the way. Small XML bodies (deletes, completions) keep their hash.
    """
    from botocore.auth import S3SigV4Auth

    if not content_unsigned:
        return S3SigV4Auth

    class UnsignedContentAuth(S3SigV4Auth):
        def _should_sha256_sign_payload(self, request: object) -> bool:
            return False

    return UnsignedContentAuth


def reason(error: BaseException) -> str:
    """Why a connection failed, in the words a person searches for."""
    import socket

    if isinstance(error, socket.gaierror):
        return "name not found"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and text[0] else type(error).__name__


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

