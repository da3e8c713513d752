"""What every S3 call shares, whichever client makes it: the retry policy, the errors, objects
as a listing gives them, and S3's XML answers read in a way that survives any server."""

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


@dataclass(frozen=True)
class RetryPolicy:
    """What is tried again, how often and how soon: the one policy of every S3 call.

    Retried: 5xx answers, throttling (429, SlowDown) and connections refused, reset or timed
    out. Never: any other 4xx, a certificate that does not verify. Every client (obstore, botocore,
    the lister) counts the first try among `attempts` and backs off exponentially from
    `first_pause` to `max_pause`.
    """

    attempts: int = 6
    first_pause: float = 0.05
    max_pause: float = 2.0
    give_up_after: float = 120.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (0 first): "full jitter", as AWS's SDKs wait."""
        return random.uniform(0, min(self.max_pause, self.first_pause * 2**attempt))

    def for_obstore(self) -> dict[str, Any]:
        return {
            "max_retries": self.attempts - 1,
            "retry_timeout": timedelta(seconds=self.give_up_after),
            "backoff": {
                "init_backoff": timedelta(seconds=self.first_pause),
                "max_backoff": timedelta(seconds=self.max_pause),
                "base": 2,
            },
        }

    def for_botocore(self) -> Any:  # botocore's _RetryDict
        return {"mode": "standard", "total_max_attempts": self.attempts}


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


def listing_page(body: bytes) -> tuple[dict[str, str], list[ObjectInfo]]:
    """A ListObjectsV2 page: its paging fields (IsTruncated, NextContinuationToken) and its objects.

    Measured on 20,000 keys: botocore's parser takes 0.72-0.84 s of CPU (timestamps left unparsed),
    ElementTree here 0.28 s; listings of 100,000 keys are read on every run.
    """
    fields: dict[str, str] = {}
    listed: list[ObjectInfo] = []
    for child in ElementTree.fromstring(body):
        tag = child.tag.rpartition("}")[2]
        if tag == "Contents":
            item = {field.tag.rpartition("}")[2]: field.text or "" for field in child}
            listed.append(ObjectInfo(item.get("Key", ""), int(item.get("Size") or 0), clean_etag(item.get("ETag", ""))))
        elif tag in PAGING:
            fields[tag] = child.text or ""
    if fields.get("EncodingType", "").lower() == "url":
        # Servers write a space as "+" and a plus as %2B: "+" decodes as botocore decodes it.
        listed = [ObjectInfo(unquote_plus(item.key), item.size, item.etag) for item in listed]
    return fields, listed


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
