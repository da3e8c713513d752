"""The S3 calls the toolkit makes, on maintained clients: obstore moves object bodies, botocore the rest.

obstore (Apache Arrow's `object_store`, in Rust) copies bodies at a third of boto3's time and a
fifth of its CPU, but it addresses objects by a path model that cannot name every S3 key:
`a/../b`, `x/./y` and `a//b` are refused, and a listing returns the folder placeholder `docs/`
as `docs`, silently another key. So listings are signed by botocore's SigV4 signer and sent
by its transport (`s3list`: every key exactly as stored, without the 100 ms botocore's client
costs a run); botocore's client makes the control calls (copy, delete, multipart with its upload id
for the ledger) and carries the bodies of the few keys obstore cannot name; obstore carries
every other body.

One `RetryPolicy` object configures all three (attempts, pauses, what is retried, connect and
read timeouts): obstore through its retry and client options, botocore's client through its
timeouts and a `needs-retry` handler in place of its own retries, the lister by reading the policy
itself. What Supabase Storage's S3 dialect needs is set here once: path-style URLs, no Content-MD5
nor default checksums, payloads signed as UNSIGNED-PAYLOAD (Storage never hashes the body: its
`signature-v4.ts` signs the header as sent), and HTTPS_PROXY / NO_PROXY honoured by each.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ops.errors import OperationFailed
from ops.s3.base import (
    AUTH_CODES,
    MAX_ERROR_TEXT,
    META_PREFIX,
    OBJECT_HEADERS,
    CutShort,
    ObjectInfo,
    RetryPolicy,
    S3Error,
    Unreachable,
    Untrusted,
    clean_etag,
    error_document,
    escape,
    one_line,
    phrase,
)
from ops.s3.listing import Lister, Page
from ops.s3.upload_ledger import UploadLedger

if TYPE_CHECKING:
    from obstore.store import S3Store


@functools.cache
def botocore_session() -> Any:
    """One botocore session for the process: the S3 model is loaded once, whatever the number of clients.

    Its loader is told S3 is the only service: botocore otherwise checks the service name against
    a scan of its ~400 model folders (about 2,700 stat calls, 10-15 ms) for each model it loads.
    """
    import botocore.session
    from botocore.loaders import Loader

    class S3Models(Loader):
        def list_available_services(self, type_name: str) -> list[str]:
            return ["s3"]

    session = botocore.session.get_session()
    session.register_component("data_loader", S3Models())
    return session


# What an object's body is read in. obstore gathers the network's pieces up to this size; at 1 MiB
# four 16 MiB downloads at once hold 23 MiB more than at 128 KiB (8 MiB), for the same CPU
# (0.05 s for 64 MiB either way), so a larger chunk costs memory and saves nothing.
BODY_CHUNK = 128 << 10


class Body(Protocol):
    """An object's answer: its headers (names lower-cased, user metadata as x-amz-meta-*) and its bytes."""

    headers: dict[str, str]

    def iter_raw(self, size: int = ...) -> Iterator[bytes | memoryview]: ...


def addressable(key: str) -> bool:
    """Whether obstore names this key exactly (its paths have no empty, `.` or `..` segment, no edge `/`,
    no ASCII control character: its parser refuses those as an illegal character sequence)."""
    return (
        bool(key)
        and not key.startswith("/")
        and not key.endswith("/")
        and not any(part in ("", ".", "..") for part in key.split("/"))
        and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in key)
    )


class S3:
    """One S3 endpoint with one set of keys; thread-safe."""

    def __init__(
        self,
        url: str,
        region: str,
        key_id: str,
        secret: str,
        *,
        max_pool: int = 16,
        retry: RetryPolicy | None = None,
        refused: Callable[[S3Error], Exception] | None = None,
        untrusted: Callable[[Untrusted], Exception] | None = None,
        where: str = "",
        ledger: UploadLedger | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.region = region
        self.max_pool = max_pool
        self.retry = retry or RetryPolicy()  # every transport's attempts, pauses and timeouts
        self.refused = refused  # what a refusal of the keys becomes (401, 403, a signature error)
        self.untrusted = untrusted  # what a certificate that does not verify becomes (never retried)
        self.where = where or f"storage at {self.base}"  # how errors name this endpoint
        self.ledger = ledger  # where open multipart uploads are noted, for a later run to abort a killed one's
        self.bulk_delete = True  # DeleteObjects, until the server says it has none
        self._keys = (key_id, secret)
        self._lock = threading.Lock()
        self._stores: dict[str, S3Store] = {}

    def __repr__(self) -> str:  # never the secret, whatever prints it
        return f"S3({self.base!r})"

    # ------------------------------------------------------------ the clients

    @functools.cached_property
    def lister(self) -> Lister:
        """Listings, on botocore's signer without its client: a run that only lists never loads the client."""
        return Lister(
            self.base,
            self.region,
            self._keys,
            retry=self.retry,
            max_pool=self.max_pool,
            where=self.where,
        )

    @functools.cached_property
    def boto(self) -> Any:
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            signature_version="s3v4",
            max_pool_connections=self.max_pool,
            tcp_keepalive=True,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **self.retry.for_botocore(),
        )
        with self._lock:
            client = botocore_session().create_client(
                "s3",
                endpoint_url=self.base,
                region_name=self.region,
                aws_access_key_id=self._keys[0],
                aws_secret_access_key=self._keys[1],
                config=config,
                verify=os.environ.get("SSL_CERT_FILE") or None,
            )
        client.meta.events.register("before-call.s3.DeleteObjects", _declare_xml)
        for operation in ("DeleteObjects", "CompleteMultipartUpload"):
            client.meta.events.register(f"before-sign.s3.{operation}", _sign_body)
        client.meta.events.register_first("before-parse.s3.*", self._readable_error)
        client.meta.events.register("needs-retry.s3", self.retry.botocore_retry)
        return client

    @staticmethod
    def _readable_error(response_dict: dict[str, Any], **_: Any) -> None:
        """Before botocore parses an error answer: Storage's error documents are namespaced (botocore
        then finds no Code), and an error body can be any size: it is replaced by the Code and
        Message found in its first 64 KiB."""
        body = response_dict.get("body")
        status = int(response_dict.get("status_code") or 0)
        if isinstance(body, bytes) and status >= 300:  # not a streamed object body: that is not ours to read
            code, message = error_document(body[:MAX_ERROR_TEXT].decode("utf-8", "replace"))
            if code or len(body) > MAX_ERROR_TEXT:
                response_dict["body"] = (
                    f"<Error><Code>{escape(code or str(status))}</Code><Message>{escape(message)}</Message></Error>"
                ).encode()

    def store(self, bucket: str) -> S3Store:
        with self._lock:
            found = self._stores.get(bucket)
            if found is None:
                from obstore.store import S3Store

                found = self._stores[bucket] = S3Store(
                    bucket,
                    endpoint=self.base,
                    region=self.region,
                    access_key_id=self._keys[0],
                    secret_access_key=self._keys[1],
                    virtual_hosted_style_request=False,
                    unsigned_payload=True,
                    skip_signature=False,
                    retry_config=self.retry.for_obstore(),  # type: ignore[arg-type]
                    client_options={  # type: ignore[arg-type]
                        "allow_http": self.base.startswith("http://"),
                        "pool_max_idle_per_host": str(self.max_pool),
                        **self.retry.obstore_timeouts(),
                    },
                )
        return found

    # ------------------------------------------------------------ errors

    def _failed(self, error: BaseException, operation: str, answered: bool = False) -> Exception:
        """What a client's exception means here: an S3Error (with the refusal hook), Unreachable, Untrusted,
        or (`answered`: the failure came while reading an answer's body) CutShort."""
        from botocore.exceptions import ClientError, HTTPClientError, SSLError
        from botocore.exceptions import ConnectionError as LostConnection

        text = str(error)[:MAX_ERROR_TEXT]  # obstore puts the whole error body in its message
        text += f" {getattr(error, 'kwargs', {}).get('error', '')}"  # botocore keeps the cause of a lost connection
        status = _obstore_status(text)
        if isinstance(error, ClientError):
            answer = error.response.get("Error", {})
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code, message = str(answer.get("Code") or status), str(answer.get("Message") or "")
        elif isinstance(error, SSLError) or (not status and "certificate" in text.lower()):
            return self._hooked(Untrusted(one_line(text.split("Debug source")[0])))
        elif answered and not status:
            return CutShort.after(self.where, operation, self.retry.attempts, text, error)
        elif isinstance(error, LostConnection | HTTPClientError) or (
            not status and not isinstance(error, FileNotFoundError)
        ):
            return Unreachable.after(self.where, self.retry.attempts, text, error)
        else:
            code, message = error_document(text)
            status = status or 404  # FileNotFoundError: obstore's word for 404
            code = code or ("NoSuchKey" if status == 404 else str(status))
        return self._hooked(S3Error(status, code, one_line(message or phrase(status)), operation, self.where))

    def _hooked(self, error: S3Error | Untrusted) -> Exception:
        """What a refusal of the keys or a certificate that does not verify becomes for the caller."""
        if isinstance(error, Untrusted):
            return self.untrusted(error) if self.untrusted else error
        if self.refused and (error.status in (401, 403) or error.code in AUTH_CODES):
            return self.refused(error)
        return error

    @contextmanager
    def _call(self, operation: str, answered: bool = False) -> Iterator[None]:
        """Turn the clients' exceptions into ours; `operation` names the request (and its object)."""
        from obstore.exceptions import BaseError

        try:
            yield
        except (BaseError, OSError, ValueError) as error:
            raise self._failed(error, operation, answered) from None
        except Exception as error:
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(error, BotoCoreError | ClientError):
                raise self._failed(error, operation, answered) from None
            raise

    # ------------------------------------------------------------ the calls

    def bucket_listable(self, bucket: str) -> bool:
        """Whether the bucket exists, asked by listing one key: unlike HeadBucket's empty answer, the
        listing's XML shows the endpoint speaks S3 (a web page answering 200 to everything does not)."""
        try:
            self._page(bucket, "", "", max_keys=1)
        except S3Error as error:
            if error.missing:
                return False
            raise
        return True

    def list_pages(self, bucket: str, prefix: str = "") -> Iterator[list[ObjectInfo]]:
        """Every object of a bucket (under `prefix`), a page (up to 1,000 keys) at a time, keys exactly as stored."""
        for page in self.pages(bucket, prefix):
            yield page.objects

    def pages(self, bucket: str, prefix: str = "", delimiter: str = "") -> Iterator[Page]:
        """The listing's pages (with a delimiter, each with the folders under `prefix` too)."""
        seen: set[str] = set()
        token = ""
        while True:
            page = self._page(bucket, prefix, token, delimiter=delimiter)
            yield page
            token = page.next_token
            if not token:
                return
            if token in seen:
                raise S3Error(
                    200,
                    "RepeatedToken",
                    "the listing handed out a continuation token it had already given; it would never end",
                    "ListObjectsV2",
                    self.where,
                )
            seen.add(token)

    def _page(self, bucket: str, prefix: str, token: str, max_keys: int = 0, delimiter: str = "") -> Page:
        try:
            return self.lister.page(bucket, prefix, token, max_keys, delimiter)
        except (S3Error, Untrusted) as error:
            raise self._hooked(error) from None

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object of a bucket (under `prefix`), in the server's order (S3's: keys by UTF-8 bytes)."""
        for page in self.list_pages(bucket, prefix):
            yield from page

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        """The folders directly under `prefix` (S3's CommonPrefixes for the delimiter `/`), each ending in `/`:
        one page per 1,000 folders, however many objects they hold."""
        return [folder for page in self.pages(bucket, prefix, "/") for folder in page.folders]

    def head_object(self, bucket: str, key: str) -> dict[str, str]:
        """The object's headers: etag, content-length, the kept headers and x-amz-meta-* (names lower-cased)."""
        with self._call(f"HeadObject {bucket}/{key}"):
            if addressable(key):
                import obstore

                return _obstore_headers(obstore.get(self.store(bucket), key, options={"head": True}))
            return dict(self.boto.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"])

    @contextmanager
    def get_object(self, bucket: str, key: str) -> Iterator[Body]:
        """The object's answer, its body unread (read raw: an object stored encoded is copied as stored)."""
        body: Body
        request = f"GetObject {bucket}/{key}"
        with self._call(request):
            if addressable(key):
                import obstore

                body = _ObstoreBody(obstore.get(self.store(bucket), key), self, request)
                close: Callable[[], None] = lambda: None  # noqa: E731 (dropped with the answer)
            else:
                answer = self.boto.get_object(Bucket=bucket, Key=key)
                body, close = (
                    _BotoBody(dict(answer["ResponseMetadata"]["HTTPHeaders"]), answer["Body"], self, request),
                    answer["Body"].close,
                )
        try:
            yield body
        finally:
            close()

    def put_object(self, bucket: str, key: str, body: bytes, headers: dict[str, str]) -> str:
        """Upload in one request; returns the ETag the server gave."""
        with self._call("PutObject"):
            if addressable(key):
                import obstore

                attributes = _obstore_attributes(headers)
                answer = obstore.put(self.store(bucket), key, body, attributes=attributes, use_multipart=False)
                return answer["e_tag"] or ""
            return str(self.boto.put_object(Bucket=bucket, Key=key, Body=body, **_boto_params(headers))["ETag"])

    def put_file(self, bucket: str, key: str, source: BinaryIO, size: int, headers: dict[str, str]) -> str:
        """Upload a file of `size` bytes in one request streamed from it (a manifest of 100,000 objects is
        30 MB: never held in memory); returns the ETag the server gave."""
        try:
            return clean_etag(self.lister.put_file(bucket, key, source, size, headers))
        except (S3Error, Untrusted) as error:
            raise self._hooked(error) from None

    def _delete_each(self, bucket: str, keys: list[str]) -> list[dict[str, str]]:
        errors = []
        for key in keys:
            try:
                self.delete_object(bucket, key)
            except S3Error as error:
                errors.append({"Key": key, "Code": error.code, "Message": error.message})
        return errors

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one key with DeleteObject, which every S3 server has (Google Cloud Storage's has no
        DeleteObjects), by the lister's signer and transport: no client and its S3 model for it."""
        try:
            self.lister.delete(bucket, key)
        except (S3Error, Untrusted) as error:
            raise self._hooked(error) from None

    def copy_object(self, bucket: str, key: str, source_key: str) -> str:
        """A server-side copy within the bucket (no bytes through here); returns the new object's ETag."""
        with self._call("CopyObject"):
            answer = self.boto.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": source_key})
        return str(answer.get("CopyObjectResult", {}).get("ETag", ""))

    def multipart_upload(self, bucket: str, key: str, parts: Iterator[bytes], headers: dict[str, str]) -> str:
        """Upload in parts (aborted, so no part is left behind, when any step fails); returns the final ETag.

        On botocore: the ledger needs the upload's id before the first part, and obstore keeps it inside.
        """
        with self._call("CreateMultipartUpload"):
            upload_id = self.boto.create_multipart_upload(Bucket=bucket, Key=key, **_boto_params(headers))["UploadId"]
        if self.ledger:
            self.ledger.started(bucket, key, upload_id)
        done: list[dict[str, Any]] = []
        try:
            for number, part in enumerate(parts, start=1):
                with self._call("UploadPart"):
                    answer = self.boto.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                    )
                done.append({"PartNumber": number, "ETag": answer["ETag"]})
            with self._call("CompleteMultipartUpload"):
                etag = str(
                    self.boto.complete_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                    ).get("ETag", "")
                )
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
            with self._call("AbortMultipartUpload"):
                self.boto.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except S3Error as error:
            return error.missing
        except OperationFailed:  # the upload's own failure is what gets reported
            return False
        return True

    def delete_objects(self, bucket: str, keys: list[str]) -> list[dict[str, str]]:
        """Delete up to 1,000 keys in one call (one DELETE a key where the server has no DeleteObjects, as
        Google Cloud Storage's S3 API); returns the per-key errors."""
        if not self.bulk_delete:
            return self._delete_each(bucket, keys)
        try:
            with self._call("DeleteObjects"):
                answer = self.boto.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
                )
        except S3Error as error:
            if error.status != 501 and error.code != "NotImplemented":
                raise
            self.bulk_delete = False
            return self._delete_each(bucket, keys)
        return [
            {"Key": str(e.get("Key", "")), "Code": str(e.get("Code", "")), "Message": str(e.get("Message", ""))}
            for e in answer.get("Errors", ())
        ]


def _obstore_attributes(headers: dict[str, str]) -> dict[str, str]:
    """An object's headers as obstore's attributes (its user metadata without the x-amz-meta- prefix)."""
    attributes = {kept.attribute: headers[kept.name] for kept in OBJECT_HEADERS if kept.name in headers}
    metadata = {name[len(META_PREFIX) :]: value for name, value in headers.items() if name.startswith(META_PREFIX)}
    return attributes | metadata


class _ObstoreBody:
    def __init__(self, answer: Any, s3: S3, request: str) -> None:
        self.headers = _obstore_headers(answer)
        self._answer, self._s3, self._request = answer, s3, request

    def iter_raw(self, size: int = BODY_CHUNK) -> Iterator[bytes | memoryview]:
        with self._s3._call(self._request, answered=True):
            for chunk in self._answer.stream(min_chunk_size=size):
                yield memoryview(chunk)  # no copy: hashlib and files take the buffer as it is


class _BotoBody:
    def __init__(self, headers: dict[str, str], body: Any, s3: S3, request: str) -> None:
        self.headers, self._body, self._s3, self._request = headers, body, s3, request

    def iter_raw(self, size: int = BODY_CHUNK) -> Iterator[bytes | memoryview]:
        with self._s3._call(self._request, answered=True):
            while chunk := self._body.read(size):
                yield chunk


def _obstore_headers(answer: Any) -> dict[str, str]:
    meta, attributes = answer.meta, answer.attributes
    headers = {"etag": meta.get("e_tag") or "", "content-length": str(meta["size"])}
    if meta.get("last_modified"):
        from email.utils import format_datetime

        headers["last-modified"] = format_datetime(meta["last_modified"], usegmt=True)  # as botocore's answer has it
    known = {kept.attribute: kept.name for kept in OBJECT_HEADERS}
    for name, value in attributes.items():
        headers[known.get(name) or META_PREFIX + name.lower()] = str(value)
    return headers


def _boto_params(headers: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {kept.param: headers[kept.name] for kept in OBJECT_HEADERS if kept.name in headers}
    metadata = {name[len(META_PREFIX) :]: value for name, value in headers.items() if name.startswith(META_PREFIX)}
    if metadata:
        params["Metadata"] = metadata
    return params


def _declare_xml(params: dict[str, Any], **_: Any) -> None:
    """Storage reads DeleteObjects' body only when it is declared as XML (botocore declares nothing)."""
    params["headers"]["Content-Type"] = "application/xml"


def _sign_body(request: Any, **_: Any) -> None:
    """XML bodies (a delete list, a completion) keep their hash in the signature; object bodies are
    sent as UNSIGNED-PAYLOAD (see the module's docstring)."""
    from botocore.config import Config

    config = request.context.get("client_config")
    if config is not None:
        request.context["client_config"] = config.merge(Config(s3={**config.s3, "payload_signing_enabled": True}))


def _obstore_status(text: str) -> int:
    """The HTTP status in an obstore error's text (it carries no attribute for it); 0 if none was answered."""
    found = re.search(r"status code: (\d{3})", text)
    return int(found.group(1)) if found else 0
