"""Bucket listings without botocore's client: what every run does first, and often all it does.

botocore's client costs about 100 ms a run before its first request (its import and S3 model:
50 ms and 50 ms here), which made a no-change sync of 1,003 objects 0.33 s against 0.25 s on
the hand-written client it replaced. A listing needs none of it, only botocore's parts below
the client: its SigV4 signer (S3SigV4Auth, the query encoded by `percent_encode_sequence`)
and its transport (URLLib3Session: pooled connections, TLS verified against the same roots,
HTTPS_PROXY / NO_PROXY chosen as the client chooses them), about 30 ms to import. The pages
are read by `listing_page`; each is asked again, and waited for, as the same `RetryPolicy` object that
configures the other two transports says (its `retried`, `pause`, `attempts` and timeouts).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote
from xml.etree.ElementTree import ParseError

from ops.s3.base import (
    MAX_ERROR_TEXT,
    ObjectInfo,
    RetryPolicy,
    S3Error,
    Unreachable,
    Untrusted,
    error_document,
    listing_page,
    one_line,
    phrase,
)

if TYPE_CHECKING:
    from botocore.httpsession import URLLib3Session


@dataclass(frozen=True)
class Page:
    objects: list[ObjectInfo]
    next_token: str  # "" on the last page
    folders: tuple[str, ...] = ()  # with a delimiter: the folders directly under the prefix


class Retry(Exception):
    """An answer to ask again for; `failure` is what the last attempt reports."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure


class Lister:
    """ListObjectsV2 on one endpoint with one set of keys; thread-safe."""

    def __init__(
        self,
        base: str,
        region: str,
        keys: tuple[str, str],
        *,
        retry: RetryPolicy,
        max_pool: int,
        where: str,
    ) -> None:
        self.base, self.region, self.retry, self.where = base, region, retry, where
        self.max_pool = max_pool
        self._keys = keys
        self._transport: URLLib3Session | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret, whatever prints it
        return f"Lister({self.base!r})"

    def page(self, bucket: str, prefix: str, token: str, max_keys: int = 0, delimiter: str = "") -> Page:
        """One page of the bucket's objects (after `token`), keys exactly as stored; asked again as the policy says."""
        query = {"list-type": "2", "encoding-type": "url", "prefix": prefix}
        if delimiter:
            query["delimiter"] = delimiter
        if token:
            query["continuation-token"] = token
        if max_keys:
            query["max-keys"] = str(max_keys)
        url = f"{self.base}/{quote(bucket, safe='')}?{_encoded(query)}"
        for attempt in range(self.retry.attempts):
            try:
                fields, objects, folders = listing_page(self._body(url))
            except Retry as retry:
                if attempt + 1 == self.retry.attempts:
                    raise retry.failure from None
            except ParseError:  # a page cut short
                if attempt + 1 == self.retry.attempts:
                    raise S3Error(200, "BadPage", "a listing page did not parse", "ListObjectsV2", self.where) from None
            else:
                truncated = fields.get("IsTruncated", "").lower() == "true"
                return Page(objects, fields.get("NextContinuationToken", "") if truncated else "", tuple(folders))
            time.sleep(self.retry.pause(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _body(self, url: str) -> bytes:
        """The body of a 200 listing to a signed GET; Retry for what is worth asking again, errors raised."""
        status, body = self._send(self._signed(url), "ListObjectsV2", whole=True)
        if status == 200:
            if b"<ListBucketResult" in body[:1024]:
                return body
            code, message = error_document(body[:MAX_ERROR_TEXT].decode("utf-8", "replace"))
            if code:  # an <Error> inside a 200: S3's word for a failure met after the status was sent
                raise Retry(S3Error(200, code, one_line(message), "ListObjectsV2", self.where))
            raise S3Error(
                200,
                "NotS3",
                f"the answer is not an S3 XML document ({body[:40]!r}); is this the S3 endpoint?",
                "ListObjectsV2",
                self.where,
            )
        raise AssertionError("unreachable")  # _send raises for any other status

    def put_file(self, bucket: str, key: str, source: BinaryIO, size: int, headers: dict[str, str]) -> str:
        """One object streamed from `source` in one signed PUT, asked again as the policy says; its ETag.
        The one write made here: botocore's client would hold its 22 MiB S3 model in memory for it."""
        from botocore.awsrequest import AWSRequest

        url = f"{self.base}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        for attempt in range(self.retry.attempts):
            source.seek(0)
            fields = {"User-Agent": "supabase-ops", "Content-Length": str(size), **headers}
            request = AWSRequest(method="PUT", url=url, data=source, headers=fields)
            try:
                _, answer = self._send(self._sign(request), "PutObject", whole=False)
            except Retry as retry:
                if attempt + 1 == self.retry.attempts:
                    raise retry.failure from None
            else:
                return answer.decode("utf-8", "replace")
            time.sleep(self.retry.pause(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def delete(self, bucket: str, key: str) -> None:
        """One key deleted by a signed DELETE (DeleteObject, which every S3 server has: obstore asks even
        for one key with DeleteObjects, which Google Cloud Storage's S3 API lacks); asked again as the
        policy says."""
        from botocore.awsrequest import AWSRequest

        url = f"{self.base}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        for attempt in range(self.retry.attempts):
            request = AWSRequest(method="DELETE", url=url, headers={"User-Agent": "supabase-ops"})
            try:
                self._send(self._sign(request), "DeleteObject", whole=False)
            except Retry as retry:
                if attempt + 1 == self.retry.attempts:
                    raise retry.failure from None
            else:
                return
            time.sleep(self.retry.pause(attempt))

    def _send(self, prepared: Any, operation: str, *, whole: bool) -> tuple[int, bytes]:
        """A signed request's 200: its status and body (`whole`), else its ETag header; Retry for what is
        worth asking again, errors raised."""
        from botocore.exceptions import ConnectionError as LostConnection
        from botocore.exceptions import HTTPClientError, SSLError
        from urllib3.exceptions import HTTPError

        try:
            answer = self.transport.send(prepared)
        except SSLError as error:
            raise Untrusted(one_line(str(error))) from None
        except (LostConnection, HTTPClientError) as error:  # refused, reset, timed out, name not found, the proxy
            text = f"{error} {error.kwargs.get('error', '')}"
            if "certificate" in text.lower():
                raise Untrusted(one_line(text)) from None
            raise Retry(Unreachable.after(self.where, self.retry.attempts, text, error)) from None
        status, raw = answer.status_code, answer.raw
        read = False
        try:
            if status == 200 and whole:
                body = raw.read()
                read = True
            elif 200 <= status < 300:
                body = answer.headers.get("ETag", "").encode()
            else:
                text = raw.read(MAX_ERROR_TEXT).decode("utf-8", "replace")  # an error body can be any size
        except HTTPError as error:  # the body cut short
            raise Retry(Unreachable.after(self.where, self.retry.attempts, str(error), error)) from None
        finally:
            if read:
                raw.release_conn()
            else:
                raw.close()  # the rest of the body is never read
        if 200 <= status < 300:
            return status, body
        code, message = error_document(text)
        failure = S3Error(status, code or str(status), one_line(message or phrase(status)), operation, self.where)
        if self.retry.retried(status, code):
            raise Retry(failure)
        raise failure

    def _signed(self, url: str) -> Any:
        from botocore.awsrequest import AWSRequest

        return self._sign(AWSRequest(method="GET", url=url, headers={"User-Agent": "supabase-ops"}))

    def _sign(self, request: Any) -> Any:
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials

        S3SigV4Auth(Credentials(*self._keys), "s3", self.region).add_auth(request)
        prepared = request.prepare()
        prepared.stream_output = True  # an error body is read only as far as MAX_ERROR_TEXT
        return prepared

    @property
    def transport(self) -> URLLib3Session:
        """botocore's own transport, set up as the client sets up its own for this endpoint."""
        with self._lock:
            if self._transport is None:
                from botocore.httpsession import URLLib3Session
                from botocore.utils import get_environ_proxies

                # As botocore's EndpointCreator makes it, with the policy's timeouts (its stubs type
                # neither a CA path nor a (connect, read) pair, both of which it passes itself).
                self._transport = URLLib3Session(
                    verify=os.environ.get("SSL_CERT_FILE") or True,  # type: ignore[arg-type]
                    proxies=get_environ_proxies(self.base),
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout),  # type: ignore[arg-type]
                    max_pool_connections=self.max_pool,
                )
            return self._transport


def _encoded(query: dict[str, str]) -> str:
    from botocore.utils import percent_encode_sequence

    return str(percent_encode_sequence(query))
