"""Objects in an environment's storage: its client, listings, what identifies content, and checked copies.

`s3client` speaks S3; this module knows what an object's ETag, recorded MD5 and metadata say of its
content, and checks every download and upload against them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ops.config import Environment
from ops.errors import OperationFailed, UserError
from ops.report import progress
from ops.s3.base import (
    META_PREFIX,
    OBJECT_HEADERS,
    ObjectInfo,
    ObjectList,
    RetryPolicy,
    S3Error,
    Untrusted,
    md5_of_etag,
)
from ops.s3.client import S3
from ops.s3.upload_ledger import UploadLedger

# Supabase caps a single PutObject by the plan's standard-upload limit (50 MiB on the sample
# config, less on some plans): an object over 16 MiB, Storage's own part size, goes up in 16 MiB
# parts, and one of 16 MiB or less in one PutObject (a single part would cost two more requests).
PART_SIZE = 16 << 20
# Storage keeps every object from 16 MiB on in parts, so its ETag is no MD5: we record the MD5.
RECORD_MD5_FROM = 16 << 20
READ_CHUNK = 1 << 20
# An upload holds its body (or its part) in memory: up to 16 MiB. Two such at a time keep a copy's
# memory near rclone's (measured at 100,000 objects + 5 x 16 MiB: 206 MiB peak with eight at once,
# against rclone's 152); small objects are never held up by them.
LARGE_UPLOAD = 4 << 20
LARGE_UPLOADS = threading.BoundedSemaphore(2)
READ_AHEAD_PAGES = 4  # of a listing (1,000 keys each) read while the other side's are compared
MD5_METADATA = "md5chksum"  # rclone's convention for the MD5 of a multipart upload
# The source version a copy was made from, where the source's ETag is no MD5 (Storage's `-N`): the
# next run tells an unchanged object by it, from one HEAD, without reading either side's bytes.
SOURCE_ETAG_METADATA = "ops-source-etag"
OWN_METADATA = {MD5_METADATA, SOURCE_ETAG_METADATA}  # ours: never copied onward as the object's own


def client(env: Environment, *, max_pool: int = 16, retry: RetryPolicy | None = None) -> S3:
    url = env.require_storage()
    key_id, secret = env.secret(env.s3_key_id_var), env.secret(env.s3_secret_var)
    missing = [var for var, value in ((env.s3_key_id_var, key_id), (env.s3_secret_var, secret)) if not value]
    if missing:
        raise UserError(f"{env.name}: storage needs S3 keys: set {' and '.join(missing)}")
    assert key_id and secret  # checked just above

    def refused(error: S3Error) -> UserError:
        return UserError(
            f"{env.name}: storage at {env.storage_url} refused the request ({error.status} {error.code}: "
            f"{error.message}): check {env.s3_key_id_var}, {env.s3_secret_var} and storage_region "
            f"({env.storage_region}, the region shown in the dashboard's S3 settings)"
        )

    def untrusted(error: Untrusted) -> UserError:
        return UserError(
            f"{env.name}: the certificate of {env.storage_url} does not verify ({error.detail}); for a "
            "private CA, point SSL_CERT_FILE at its certificate"
        )

    return S3(
        url,
        env.storage_region or "us-east-1",
        key_id,
        secret,
        max_pool=max_pool,
        retry=retry,
        refused=refused,
        untrusted=untrusted,
        where=f"{env.name}: storage at {url}",
        ledger=UploadLedger(ledger_folder(env)),
    )


def ledger_folder(env: Environment) -> Path:
    from ops.config import config_path

    return config_path().parent / ".ops" / "multipart" / env.folder


def abort_leftover_uploads(s3: S3, env: Environment) -> int:
    """Abort the multipart uploads that killed runs of this toolkit left open on `env`; say how many."""
    if s3.ledger is None:
        return 0
    aborted = 0
    for upload in s3.ledger.leftovers():
        if s3.abort_upload(upload.bucket, upload.key, upload.upload_id):
            upload.path.unlink(missing_ok=True)
            aborted += 1
    if aborted:
        progress(f"{env.name}: aborted {aborted} unfinished multipart upload(s) that an interrupted run left open")
    return aborted


def bucket_exists(s3: S3, bucket: str) -> bool:
    return s3.bucket_listable(bucket)


def list_objects(s3: S3, bucket: str, prefix: str = "") -> dict[str, ObjectInfo]:
    return {info.key: info for info in s3.list_objects(bucket, prefix)}


class OutOfOrder(OperationFailed):
    """A listing whose keys are not in S3's order (UTF-8 bytes): a streamed comparison cannot use it."""


class Listing:
    """One bucket's listing, read ahead on a thread of its own (a few pages, whatever the bucket's size)
    and handed out one object at a time with its key's bytes, checked to come in S3's order."""

    def __init__(self, s3: S3, bucket: str) -> None:
        self.missing = False  # no such bucket: known once the first answer is in (wait_answered)
        self.failed: BaseException | None = None  # why the listing stopped short, if it did
        self.count = 0
        self._pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=READ_AHEAD_PAGES)
        self._stop = threading.Event()
        self._answered = threading.Event()
        threading.Thread(target=self._read, args=(s3, bucket), daemon=True, name=f"listing {bucket}").start()

    def wait_answered(self) -> None:
        """Until the server has answered the first page (or failed to): then `missing` is known."""
        self._answered.wait()

    def close(self) -> None:
        """Stop reading ahead (an unfinished listing's thread ends at its next page)."""
        self._stop.set()

    def _read(self, s3: S3, bucket: str) -> None:
        try:
            for page in s3.list_pages(bucket):
                while not self._stop.is_set():
                    try:
                        self._pages.put(("page", page), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                self._answered.set()
                if self._stop.is_set():
                    return
        except S3Error as error:
            if not error.missing:
                self.failed = error
                self._pages.put(("error", error))
                return
            self.missing = True
        except BaseException as error:  # noqa: BLE001 (raised where the listing is read)
            self.failed = error
            self._pages.put(("error", error))
            return
        finally:
            self._answered.set()
        self._pages.put(("end", None))

    def __iter__(self) -> Iterator[tuple[bytes, ObjectInfo]]:
        last = b""
        try:
            while True:
                kind, value = self._pages.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                for info in value:
                    key = info.key.encode()
                    if key <= last:
                        raise OutOfOrder(f"listed {info.key!r} after {last.decode(errors='replace')!r}")
                    last = key
                    self.count += 1
                    yield key, info
        finally:
            self._stop.set()


def list_objects_if_any(s3: S3, bucket: str) -> dict[str, ObjectInfo] | None:
    """The bucket's objects by key, or None when there is no such bucket."""
    listed = listed_if_any(s3, bucket)
    return None if listed is None else {info.key: info for info in listed}


def listed_if_any(s3: S3, bucket: str) -> ObjectList | None:
    """The bucket's objects as listed (compact, and no index by key where none is needed), or None when
    there is no such bucket."""
    try:
        return ObjectList(s3.list_objects(bucket))
    except S3Error as error:
        if error.missing:
            return None
        raise


def metadata_of(headers: Any) -> dict[str, str]:
    """User metadata from response headers (names lower-cased, as Storage stores them)."""
    return {
        name[len(META_PREFIX) :].lower(): value
        for name, value in headers.items()
        if name.lower().startswith(META_PREFIX)
    }


def metadata_md5(metadata: dict[str, str]) -> str | None:
    for key, value in metadata.items():
        if key.lower() == MD5_METADATA:
            try:
                return base64.b64decode(value).hex()
            except ValueError:
                return None
    return None


def copied_from(s3: S3, bucket: str, info: ObjectInfo) -> str | None:
    """The source ETag a copy recorded when it was made (None if it recorded none)."""
    return metadata_of(s3.head_object(bucket, info.key)).get(SOURCE_ETAG_METADATA)


def recorded_md5(s3: S3, bucket: str, info: ObjectInfo) -> str | None:
    """The object's MD5 without reading it: its ETag when that is one, else the md5 recorded at upload."""
    if info.md5:
        return info.md5
    return metadata_md5(metadata_of(s3.head_object(bucket, info.key)))


def read_md5(s3: S3, bucket: str, key: str) -> str:
    """The object's MD5 by reading it whole (the last resort)."""
    digest = hashlib.md5()
    with s3.get_object(bucket, key) as response:
        for chunk in response.iter_raw():
            digest.update(chunk)
    return digest.hexdigest()


def content_md5(s3: S3, bucket: str, info: ObjectInfo) -> str:
    return recorded_md5(s3, bucket, info) or read_md5(s3, bucket, info.key)


class ContentMismatch(OperationFailed):
    """What arrived is not the content: cut short, or bytes changed on the way. Fetching again may mend it."""


@dataclass
class Content:
    """What is known of an object's content, downloaded or about to be uploaded: its size, hashes and headers."""

    size: int
    md5: str
    sha256: str
    headers: dict[str, Any]  # the kept ones (OBJECT_HEADERS), by their S3 names
    metadata: dict[str, str]
    md5_hashed: bool = True  # False: `md5` is the source's ETag, taken on trust until something checks it
    source_etag: str = ""  # the source's ETag when it is no MD5: recorded on the copy (SOURCE_ETAG_METADATA)


def download(
    s3: S3,
    bucket: str,
    key: str,
    out: BinaryIO,
    expected: ObjectInfo | None = None,
    *,
    sha256: bool = True,
    trust_etag: bool = False,
) -> Content:
    """Stream an object into `out`, hashing it, and check it arrived whole (sha256 for backups only).

    With `trust_etag`, an answer whose ETag is a plain MD5 is not hashed: that MD5 stands for
    the content, and the target's ETag checks it end to end once uploaded (`upload`), as rclone
    checks a copy between two servers. Any other ETag, and every object without the flag, is hashed.
    """
    size = 0
    with s3.get_object(bucket, key) as response:
        headers = response.headers
        etag_md5 = md5_of_etag(headers.get("etag", "")) or ""
        md5 = None if trust_etag and etag_md5 else hashlib.md5()
        digest = hashlib.sha256() if sha256 else None
        # Raw bytes: an object stored gzip-encoded is copied as it is stored, never decoded.
        for chunk in response.iter_raw():
            out.write(chunk)
            if md5:
                md5.update(chunk)
            if digest:
                digest.update(chunk)
            size += len(chunk)
    got = Content(
        size,
        md5.hexdigest() if md5 else etag_md5,
        digest.hexdigest() if digest else "",
        {kept.name: value for kept in OBJECT_HEADERS if (value := headers.get(kept.name))},
        {k: v for k, v in metadata_of(headers).items() if k not in OWN_METADATA},
        md5_hashed=md5 is not None,
    )
    length = headers.get("content-length")
    if (length is not None and size != int(length)) or (expected and size != expected.size):
        raise ContentMismatch(f"{bucket}/{key}: truncated download ({size} of {length} bytes)")
    if etag_md5 and etag_md5 != got.md5:
        raise ContentMismatch(f"{bucket}/{key}: downloaded content does not match its ETag")
    return got


def hashed_md5(source: BinaryIO) -> str:
    digest = hashlib.md5()
    source.seek(0)
    while chunk := source.read(READ_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def check_held(bucket: str, key: str, source: BinaryIO, got: Content) -> None:
    """Hash the bytes held here when only the source's claim stands for them: what a target that
    gives no MD5 back cannot check, and what is recorded as md5chksum, is always computed here."""
    if got.md5_hashed:
        return
    actual = hashed_md5(source)
    if actual != got.md5:
        raise ContentMismatch(
            f"{bucket}/{key}: the bytes downloaded hash to {actual}, not the source's MD5 "
            f"{got.md5} (changed on the way down)"
        )
    got.md5_hashed = True


def upload(s3: S3, bucket: str, key: str, source: BinaryIO, got: Content) -> None:
    """Upload content whose MD5 we know, and check the target's MD5 of it wherever the target gives one.

    A PutObject's ETag is the MD5 of what was stored. A multipart upload's is not, nor is Storage's
    for 16 MiB and more (then the MD5 is recorded as metadata, like rclone does); some servers
    report the stored object's MD5 when asked (rclone serve s3 does, Storage does not): where
    they do, it is checked too. Where the target gives none back, the bytes are hashed here, so
    the copy is checked at least as far as this machine, and https carries it the rest.
    """
    headers = {kept.name: str(got.headers[kept.name]) for kept in OBJECT_HEADERS if kept.name in got.headers}
    metadata = dict(got.metadata)
    if got.size >= RECORD_MD5_FROM:
        check_held(bucket, key, source, got)  # never record an MD5 nobody computed
        metadata[MD5_METADATA] = base64.b64encode(bytes.fromhex(got.md5)).decode()
    if got.source_etag:
        metadata[SOURCE_ETAG_METADATA] = got.source_etag
    headers |= {META_PREFIX + name: value for name, value in metadata.items()}
    source.seek(0)
    with LARGE_UPLOADS if got.size >= LARGE_UPLOAD else contextlib.nullcontext():
        if got.size <= PART_SIZE:
            etag = s3.put_object(bucket, key, source.read(), headers)
        else:
            etag = s3.multipart_upload(bucket, key, iter(lambda: source.read(PART_SIZE), b""), headers)
    stored = md5_of_etag(etag)
    if not stored and got.size >= RECORD_MD5_FROM:
        stored = md5_of_etag(s3.head_object(bucket, key).get("etag", ""))  # one request more, beside 16 MiB and more
    if stored is None:
        check_held(bucket, key, source, got)  # an encrypted bucket, Storage's -N ETags: no MD5 comes back
    if stored and stored != got.md5:
        raise ContentMismatch(
            f"{bucket}/{key}: the target's MD5 of what it stored is {stored}, not {got.md5} (the "
            "bytes changed on the way, or the source's content does not match its own ETag)"
        )
