"""What every S3 call shares, whichever client makes it: the retry policy, the errors, the headers
an object keeps, objects as a listing gives them, and S3's XML answers read in a way that survives any server."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ElementTree
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

from ops.errors import OperationFailed, first_line

AUTH_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AuthorizationHeaderMalformed",
    "AccessDenied",
    "InvalidSignature",
    "ExpiredToken",
}
MAX_MESSAGE = 300  # of a server's error text in one line: an error body can be any size
MAX_ERROR_TEXT = 64 << 10  # of an exception's text read at all
PAGING = {"IsTruncated", "NextContinuationToken", "EncodingType"}  # a listing's fields that matter here


META_PREFIX = "x-amz-meta-"  # the headers of an object's user metadata


@dataclass(frozen=True)
class ObjectHeader:
    """A header an object keeps, and a copy of it keeps too, by each name it goes by here."""

    name: str  # as S3 sends it, lower-cased
    param: str  # botocore's parameter
    attribute: str  # obstore's attribute
    field: str  # a backup manifest's field


OBJECT_HEADERS = (
    ObjectHeader("content-type", "ContentType", "Content-Type", "content_type"),
    ObjectHeader("cache-control", "CacheControl", "Cache-Control", "cache_control"),
    ObjectHeader("content-disposition", "ContentDisposition", "Content-Disposition", "content_disposition"),
    ObjectHeader("content-encoding", "ContentEncoding", "Content-Encoding", "content_encoding"),
    ObjectHeader("content-language", "ContentLanguage", "Content-Language", "content_language"),
)


# Error codes worth asking again whatever the status they come with (as botocore's standard mode):
# throttling, a request the server timed out, a server's own failure.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """What is tried again, how often and how soon, and how long one attempt may wait: the one
    policy of every S3 call, whichever of the three transports carries it (see `ops.s3.client`).

    - `attempts` counts the first try: every transport sends a failing request `attempts` times, then
      raises what the last attempt met (obstore: `max_retries`; botocore's client and the lister:
      `botocore_retry` and `Lister.page`, both deciding with `retried` and waiting `pause`).
    - Retried: answers with status 5xx or 429, or a code in `transient_codes`, and connections refused,
      reset or timed out. Never: any other 4xx, a certificate that does not verify. obstore judges by
      status alone: a transient code on a 4xx (S3's 400 RequestTimeout to an upload that stalled) is
      not retried there.
    - Pauses grow from `first_pause` to at most `max_pause`: "full jitter" on botocore's client and the
      lister, obstore's own jitter between the same bounds.
    - `connect_timeout` bounds each wait for a connection, `read_timeout` each wait for the next bytes
      of an answer (headers or body). No call has an overall deadline: a large body takes as long as it
      takes while its bytes keep coming.
    """

    attempts: int = 6
    first_pause: float = 0.05
    max_pause: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    transient_codes: frozenset[str] = TRANSIENT_CODES

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (0 first): "full jitter", as AWS's SDKs wait."""
        return random.uniform(0, min(self.max_pause, self.first_pause * 2**attempt))

    def retried(self, status: int, code: str) -> bool:
        """Whether an error answer is worth asking again."""
        # 501 Not Implemented is the server's lasting word (no DeleteObjects on Google Cloud Storage).
        return (status >= 500 and status != 501) or status == 429 or code in self.transient_codes

    def for_obstore(self) -> dict[str, Any]:
        """obstore's `retry_config`: its time budget is set past what `attempts` attempts can take, so
        the count, not the clock, ends the retrying there as on the other transports."""
        slowest = self.connect_timeout + self.read_timeout + self.max_pause
        return {
            "max_retries": self.attempts - 1,
            "retry_timeout": timedelta(seconds=self.attempts * slowest),
            "backoff": {
                "init_backoff": timedelta(seconds=self.first_pause),
                "max_backoff": timedelta(seconds=self.max_pause),
                "base": 2,
            },
        }

    def obstore_timeouts(self) -> dict[str, Any]:
        """obstore's `client_options` timeouts; its overall request deadline (30 s unless set) is set
        past any body's transfer, so `read_timeout` is what a stalled answer meets."""
        return {
            "connect_timeout": timedelta(seconds=self.connect_timeout),
            "read_timeout": timedelta(seconds=self.read_timeout),
            "timeout": timedelta(days=1),
        }

    def for_botocore(self) -> dict[str, Any]:
        """botocore `Config` arguments: its own retries off (one attempt), as `botocore_retry` retries."""
        return {
            "retries": {"mode": "standard", "total_max_attempts": 1},
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }

    def botocore_retry(
        self, attempts: int, response: Any = None, caught_exception: Exception | None = None, **_: Any
    ) -> float | None:
        """botocore's `needs-retry` event: seconds to wait before asking again, or None to stop.
        `attempts` counts the one just made; `response` is (the HTTP answer, its parsed dict)."""
        if attempts >= self.attempts:
            return None
        if caught_exception is not None:
            from botocore.exceptions import ConnectionError as LostConnection
            from botocore.exceptions import HTTPClientError, SSLError

            text = f"{caught_exception} {getattr(caught_exception, 'kwargs', {}).get('error', '')}"
            retry = (
                isinstance(caught_exception, LostConnection | HTTPClientError)
                and not isinstance(caught_exception, SSLError)
                and "certificate" not in text.lower()
            )
        elif response is not None:
            answer, parsed = response
            code = str(parsed.get("Error", {}).get("Code") or "")
            retry = answer.status_code >= 300 and self.retried(answer.status_code, code)
        else:
            retry = False
        return self.pause(attempts - 1) if retry else None


# For a look that must not hold up what shows it (inv status, inv doctor): two tries, 10 s each wait.
GLANCE = RetryPolicy(attempts=2, connect_timeout=10.0, read_timeout=10.0)


class S3Error(OperationFailed):
    """An error answer from the server: one line that names the endpoint, the call and the answer."""

    def __init__(self, status: int, code: str, message: str, operation: str, where: str = "") -> None:
        super().__init__(f"{where + ': ' if where else ''}{operation} answered {status} {code}: {message}")
        self.status, self.code, self.message, self.operation = status, code, message, operation
        self.brief = f"{status} {code}: {message}".strip()

    @property
    def missing(self) -> bool:
        return self.status == 404 or self.code in ("NoSuchBucket", "NotFound", "NoSuchKey")


class Unreachable(OperationFailed):
    """No answer from the endpoint after every attempt (name not found, refused, reset, timed out)."""

    @classmethod
    def after(cls, where: str, attempts: int, text: str, error: BaseException) -> Unreachable:
        """The failure of the last attempt, in words a person searches for, with what to check."""
        return cls(
            f"{where}: cannot reach it ({reason(text, error)}) after {attempts} attempts; "
            "check storage_url and the network"
        )


class CutShort(OperationFailed):
    """The server answered an object request, but its body stopped before the end, on every attempt."""

    @classmethod
    def after(cls, where: str, request: str, attempts: int, text: str, error: BaseException) -> CutShort:
        return cls(
            f"{where}: {request}: the server answered, but the body was cut short ({reason(text, error)}) "
            f"on every one of {attempts} attempts"
        )


class Untrusted(OperationFailed):
    """The endpoint's certificate does not verify against the roots this machine trusts."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def listing_page(body: bytes) -> tuple[dict[str, str], list[ObjectInfo], list[str]]:
    """A ListObjectsV2 page: its paging fields (IsTruncated, NextContinuationToken), its objects, and its
    folders (CommonPrefixes, asked for with a delimiter).

    Measured on 20,000 keys: botocore's parser takes 0.72-0.84 s of CPU (timestamps left unparsed),
    ElementTree here 0.28 s; listings of 100,000 keys are read on every run. Each Contents' fields
    found by tag (in C) and keys decoded only where they hold an escape: 100,000 url-encoded keys in
    0.39 s, 0.6 s before.
    """
    fields: dict[str, str] = {}
    listed: list[ObjectInfo] = []
    folders: list[str] = []
    root = ElementTree.fromstring(body)
    # S3's namespace, or none (some servers leave it out): each Contents' three fields found by their
    # tag in C, not each field's name worked out in Python (100,000 keys a listing, two listings a run).
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    decoded = (root.findtext(ns + "EncodingType") or "").lower() == "url"
    key_tag, size_tag, etag_tag = ns + "Key", ns + "Size", ns + "ETag"
    for child in root:
        tag = child.tag.rpartition("}")[2]
        if tag == "Contents":
            key = child.findtext(key_tag) or ""
            # Servers write a space as "+" and a plus as %2B: "+" decodes as botocore decodes it.
            size, etag = child.findtext(size_tag), child.findtext(etag_tag) or ""
            if decoded and ("%" in key or "+" in key):
                key = unquote_plus(key)
            listed.append(ObjectInfo(key, int(size or 0), clean_etag(etag)))
        elif tag == "CommonPrefixes":
            folders += [field.text or "" for field in child if field.tag.rpartition("}")[2] == "Prefix"]
        elif tag in PAGING:
            fields[tag] = child.text or ""
    if decoded:
        folders = [unquote_plus(folder) for folder in folders]
    return fields, listed, folders


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object as a listing gives it (ETag unquoted, lower-cased); slots: a bucket may list 100,000 of them."""

    key: str
    size: int
    etag: str

    @property
    def md5(self) -> str | None:
        """The MD5 of the content when the ETag is one (not a multipart ETag like `abc-3`)."""
        return md5_of_etag(self.etag)


class ObjectList:
    """Objects held for later (a listing, a plan's copies) in about 90 bytes each instead of 250.

    Keys and ETags sit in two byte strings, sizes in an array; each object is made again when
    iterated. A backup or copy of 100,000 objects holds them all: held as objects, they would
    cost about 16 MiB more, enough to lift a full copy's peak above rclone's.
    """

    __slots__ = ("_keys", "_etags", "_sizes", "_key_ends", "_etag_ends")

    def __init__(self, objects: Iterable[ObjectInfo] = ()) -> None:
        self._keys, self._etags = bytearray(), bytearray()
        self._sizes, self._key_ends, self._etag_ends = array("q"), array("Q"), array("Q")
        for info in objects:
            self.append(info)

    def append(self, info: ObjectInfo) -> None:
        self._keys += info.key.encode("utf-8", "surrogatepass")
        self._etags += info.etag.encode("utf-8", "surrogatepass")
        self._key_ends.append(len(self._keys))
        self._etag_ends.append(len(self._etags))
        self._sizes.append(info.size)

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[ObjectInfo]:
        key_start = etag_start = 0
        for size, key_end, etag_end in zip(self._sizes, self._key_ends, self._etag_ends, strict=True):
            yield ObjectInfo(
                self._keys[key_start:key_end].decode("utf-8", "surrogatepass"),
                size,
                self._etags[etag_start:etag_end].decode("utf-8", "surrogatepass"),
            )
            key_start, etag_start = key_end, etag_end

    @property
    def total_size(self) -> int:
        return sum(self._sizes)


def clean_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def md5_of_etag(etag: str) -> str | None:
    """The content's MD5 when an ETag (raw or cleaned) is one, not a multipart ETag like `abc-3`."""
    clean = clean_etag(etag)
    return clean if len(clean) == 32 and "-" not in clean else None


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def error_document(body: str) -> tuple[str, str]:
    """Code and Message of an S3 error document, whatever its namespace (regexes: it may be cut short)."""
    code = re.search(r"<Code>([^<]*)</Code>", body)
    message = re.search(r"<Message>([^<]*)</Message>", body)
    return (code.group(1).strip() if code else ""), (message.group(1).strip() if message else "")


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reason(text: str, error: BaseException) -> str:
    """Why a connection failed, in the words a person searches for."""
    for needle, words in (
        ("dns error", "name not found"),
        ("Name or service not known", "name not found"),
        ("ConnectionRefused", "connection refused"),
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("TimedOut", "timed out"),
        ("reset", "connection reset"),
    ):
        if needle in text:
            return words
    return first_line(error, typed=True)
