"""The S3 layer against a small fake server that answers what a real one may: pages, repeats, 5xx, 403, huge errors."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ops.s3.base import RetryPolicy, S3Error, Unreachable
from ops.s3.client import S3

LAST_MODIFIED = "Wed, 02 Dec 2026 12:00:00 GMT"
Answer = tuple[int, dict[str, str], bytes]


def listing(keys: list[str], token: str | None) -> bytes:
    contents = "".join(
        f"<Contents><Key>{k}</Key><LastModified>2026-12-02T12:00:00.000Z</LastModified>"
        f'<ETag>"{i:032x}"</ETag><Size>{i}</Size></Contents>'
        for i, k in enumerate(keys)
    )
    more = (
        f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        if token
        else "<IsTruncated>false</IsTruncated>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>b</Name><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>{more}{contents}"
        "</ListBucketResult>"
    ).encode()


def error(code: str, message: str = "no") -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


class FakeS3:
    """Answers each request with `respond(method, path, query)`; counts what it was asked."""

    def __init__(self, respond: Callable[[str, str, dict[str, str]], Answer | Iterator[bytes]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake.bodies.append(self.rfile.read(length) if length else b"")
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                fake.requests.append((self.command, parts.path, query))
                status, headers, body = respond(self.command, parts.path, query)  # type: ignore[misc]
                self.send_response(status)
                for name, value in {
                    "Content-Length": str(len(body)),
                    "Last-Modified": LAST_MODIFIED,
                    **headers,
                }.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @contextmanager
    def running(self) -> Iterator[S3]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield S3(self.url, "us-east-1", "AKIAFAKE", "fake-secret", retry=RetryPolicy(attempts=3, first_pause=0.01))
        finally:
            self.server.shutdown()
            self.server.server_close()


def test_a_listing_follows_every_page_over_1000_keys():
    keys = [f"k{i:05d}" for i in range(2500)]

    def respond(method: str, path: str, query: dict[str, str]) -> Answer:
        start = int(query.get("continuation-token", "0"))
        end = min(start + 1000, len(keys))
        return 200, {"Content-Type": "application/xml"}, listing(keys[start:end], str(end) if end < len(keys) else None)

    fake = FakeS3(respond)
    with fake.running() as s3:
        listed = list(s3.list_objects("b"))
    assert [item.key for item in listed] == keys
    assert len(fake.requests) == 3


def test_a_repeated_continuation_token_ends_the_listing_with_an_error():
    fake = FakeS3(lambda method, path, query: (200, {}, listing(["same"], "again")))
    with fake.running() as s3, pytest.raises(S3Error, match="RepeatedToken"):
        for _ in s3.list_objects("b"):
            pass
    assert len(fake.requests) == 2  # the second page repeated the token: stopped there, not looping


@pytest.mark.parametrize("key", ["plain.txt", "a/../b"], ids=["obstore", "boto3"])
def test_a_server_error_is_retried_then_the_answer_used(key):
    answers = iter([(503, {}, error("SlowDown")), (200, {"ETag": '"5d41402abc4b2a76b9719d911017c592"'}, b"hello")])
    fake = FakeS3(lambda method, path, query: next(answers))
    with fake.running() as s3, s3.get_object("b", key) as body:
        assert b"".join(body.iter_raw(1 << 20)) == b"hello"
        assert body.headers["etag"].strip('"') == "5d41402abc4b2a76b9719d911017c592"
    assert [method for method, _, _ in fake.requests] == ["GET", "GET"]


def test_server_errors_past_the_policy_fail_with_the_server_code():
    fake = FakeS3(lambda method, path, query: (500, {}, error("InternalError", "disk on fire")))
    with fake.running() as s3, pytest.raises(S3Error) as raised:
        s3.head_object("b", "plain.txt")
    assert raised.value.status == 500
    assert len(fake.requests) == 3  # RetryPolicy(attempts=3)


@pytest.mark.parametrize("call", ["list", "get", "put"])
def test_a_refusal_is_not_retried_and_goes_to_the_refusal_hook(call):
    fake = FakeS3(lambda method, path, query: (403, {}, error("InvalidAccessKeyId", "unknown key")))
    refusals: list[S3Error] = []

    def refused(failure: S3Error) -> Exception:
        refusals.append(failure)
        return RuntimeError("refused")

    with fake.running() as s3:
        s3.refused = refused
        with pytest.raises(RuntimeError, match="refused"):
            if call == "list":
                list(s3.list_objects("b"))
            elif call == "get":
                with s3.get_object("b", "plain.txt"):
                    pass
            else:
                s3.put_object("b", "plain.txt", b"x", {})
    assert len(fake.requests) == 1
    assert refusals[0].status == 403 and refusals[0].code in ("InvalidAccessKeyId", "403")


@pytest.mark.parametrize("key", ["plain.txt", "a//b"], ids=["obstore", "boto3"])
def test_an_error_body_of_100_mib_gives_one_short_line(key):
    huge = error("AccessDenied", "denied") + b"x" * (100 << 20)
    fake = FakeS3(lambda method, path, query: (400, {}, huge))
    with fake.running() as s3, pytest.raises(S3Error) as raised:
        s3.put_object("b", key, b"x", {})
    assert raised.value.status == 400
    assert len(str(raised.value)) < 600


def test_a_dead_endpoint_is_unreachable_after_the_policy_attempts():
    fake = FakeS3(lambda method, path, query: (200, {}, b""))
    s3 = S3(fake.url, "us-east-1", "AKIAFAKE", "fake-secret", retry=RetryPolicy(attempts=2, first_pause=0.01))
    fake.server.server_close()  # nobody listens on the port any more
    with pytest.raises(Unreachable, match="connection refused"):
        s3.head_object("b", "plain.txt")


@pytest.mark.parametrize("first", ["cut short", "error inside a 200"])
def test_a_listing_page_cut_short_or_an_error_inside_a_200_is_asked_again(first):
    """A 200 carrying an <Error> (botocore's check, run inside our listing) and a page that does not
    parse are each asked again: a retry, never a wrong listing."""
    page = listing(["a", "b"], None)
    bad = page[: len(page) // 2] if first == "cut short" else error("InternalError")
    answers = iter([bad, page])

    def respond(method: str, path: str, query: dict[str, str]) -> Answer:
        return 200, {"Content-Type": "application/xml"}, next(answers)

    fake = FakeS3(respond)
    with fake.running() as s3:
        assert [item.key for item in s3.list_objects("b")] == ["a", "b"]
    assert len(fake.requests) == 2


def test_a_listing_server_error_or_throttling_is_retried_then_the_page_used():
    answers = iter([(503, {}, error("SlowDown")), (429, {}, b""), (200, {}, listing(["a"], None))])
    fake = FakeS3(lambda method, path, query: next(answers))
    with fake.running() as s3:
        assert [item.key for item in s3.list_objects("b")] == ["a"]
    assert len(fake.requests) == 3


def test_a_listing_error_past_the_policy_fails_with_the_server_code():
    fake = FakeS3(lambda method, path, query: (500, {}, error("InternalError", "disk on fire")))
    with fake.running() as s3, pytest.raises(S3Error, match="ListObjectsV2 answered 500 InternalError: disk on fire"):
        list(s3.list_objects("b"))
    assert len(fake.requests) == 3  # RetryPolicy(attempts=3)


def test_a_listing_error_body_of_100_mib_gives_one_short_line():
    huge = error("AccessDenied", "denied") + b"x" * (100 << 20)
    fake = FakeS3(lambda method, path, query: (400, {}, huge))
    with fake.running() as s3, pytest.raises(S3Error) as raised:
        list(s3.list_objects("b"))
    assert (raised.value.status, raised.value.code) == (400, "AccessDenied")
    assert len(str(raised.value)) < 600


def test_a_listing_of_a_dead_endpoint_is_unreachable_after_the_policy_attempts():
    fake = FakeS3(lambda method, path, query: (200, {}, b""))
    s3 = S3(fake.url, "us-east-1", "AKIAFAKE", "fake-secret", retry=RetryPolicy(attempts=2, first_pause=0.01))
    fake.server.server_close()
    with pytest.raises(Unreachable, match="connection refused.* after 2 attempts"):
        s3.bucket_listable("b")


def test_a_web_page_answering_200_is_refused_not_listed_as_an_empty_bucket():
    fake = FakeS3(lambda method, path, query: (200, {"Content-Type": "text/html"}, b"<html>Sign in</html>"))
    with fake.running() as s3, pytest.raises(S3Error, match="not an S3 XML document"):
        list(s3.list_objects("b"))
    assert len(fake.requests) == 1  # a web page is not asked again


def test_a_listing_asks_for_url_encoded_keys_and_sends_the_token_back_exactly():
    """Keys are read exactly as stored whatever they hold; the token (any characters) comes back as given."""
    token = "a+b/c=d%e f"
    keys = ["a+b c", "%41", "é/ü", "line\nbreak"]
    from urllib.parse import quote_plus

    def respond(method: str, path: str, query: dict[str, str]) -> Answer:
        encoded = [quote_plus(key) for key in keys]
        page = listing(encoded[:2], token) if "continuation-token" not in query else listing(encoded[2:], None)
        return 200, {}, page.replace(b"<Name>", b"<EncodingType>url</EncodingType><Name>")

    fake = FakeS3(respond)
    with fake.running() as s3:
        assert [item.key for item in s3.list_objects("b", prefix="docs/ a+b")] == keys
    first, second = (query for _, _, query in fake.requests)
    assert first == {"list-type": "2", "encoding-type": "url", "prefix": "docs/ a+b"}
    assert second["continuation-token"] == token
    assert [path for _, path, _ in fake.requests] == ["/b", "/b"]


def test_a_key_with_an_ascii_control_character_is_not_addressable_by_obstore():
    from ops.s3.client import addressable

    assert addressable("avatars/a b%c\u200b.png")
    for key in ("avatars/a\tb.png", "avatars/a\x7fb", "avatars/a\x01b"):
        assert not addressable(key), repr(key)  # obstore refuses it: "illegal character sequence"


# One call on each transport an S3 endpoint has: the lister (botocore's signer and transport),
# obstore (object bodies of keys it can name) and botocore's client (control calls, other keys).
def _read(s3: S3, key: str) -> None:
    with s3.get_object("b", key) as body:
        b"".join(body.iter_raw())


TRANSPORTS: dict[str, Callable[[S3], object]] = {
    "lister": lambda s3: list(s3.list_objects("b")),
    "obstore-get": lambda s3: _read(s3, "plain.txt"),
    "obstore-put": lambda s3: s3.put_object("b", "plain.txt", b"x", {}),
    "lister-put": lambda s3: s3.put_file("b", "m.json", io.BytesIO(b"{}"), 2, {}),
    "lister-delete": lambda s3: s3.delete_object("b", "m.json"),
    "botocore-get": lambda s3: _read(s3, "a//b"),
    "botocore-copy": lambda s3: s3.copy_object("b", "copy.txt", "plain.txt"),
}
# Short pauses: botocore's own backoff (a second, doubled, up to 20) would take seconds for five retries.
QUICK = RetryPolicy(attempts=6, first_pause=0.01, max_pause=0.02, read_timeout=0.5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_asks_a_failing_server_the_policy_attempts_then_gives_the_same_error(transport):
    fake = FakeS3(lambda method, path, query: (503, {}, error("SlowDown", "reduce your request rate")))
    with fake.running() as s3:
        s3.retry = QUICK
        started = time.monotonic()
        with pytest.raises(S3Error) as raised:
            TRANSPORTS[transport](s3)
        took = time.monotonic() - started
    assert len(fake.requests) == QUICK.attempts
    failure = raised.value
    assert (failure.status, failure.code, failure.message) == (503, "SlowDown", "reduce your request rate")
    assert took < 1.5, f"{took:.2f} s for pauses of at most {QUICK.max_pause} s: the policy's backoff was not used"


@pytest.mark.parametrize("transport", ["lister", "lister-put", "lister-delete", "botocore-get", "botocore-copy"])
def test_a_transient_code_on_a_4xx_is_asked_again_as_the_policy_says(transport):
    """obstore judges by status alone (the policy's docstring says so): only the other two read codes."""
    fake = FakeS3(lambda method, path, query: (400, {}, error("RequestTimeout", "idle too long")))
    with fake.running() as s3:
        s3.retry = QUICK
        with pytest.raises(S3Error, match="RequestTimeout"):
            TRANSPORTS[transport](s3)
    assert len(fake.requests) == QUICK.attempts


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_gives_up_waiting_at_the_policy_read_timeout(transport):
    """A server that answers nothing for 5 s: each attempt ends at the read timeout (0.5 s), and is made again."""
    released = threading.Event()

    def stall(method: str, path: str, query: dict[str, str]) -> Answer:
        released.wait(5)
        return 503, {}, error("SlowDown")

    fake = FakeS3(stall)
    policy = RetryPolicy(attempts=2, first_pause=0.01, max_pause=0.02, read_timeout=0.5)
    try:
        with fake.running() as s3:
            s3.retry = policy
            started = time.monotonic()
            with pytest.raises(Unreachable, match="timed out") as raised:
                TRANSPORTS[transport](s3)
            took = time.monotonic() - started
    finally:
        released.set()
    assert len(fake.requests) == policy.attempts, raised.value
    assert took < 3, f"{took:.2f} s: a read timeout of {policy.read_timeout} s was not obeyed"


def test_each_transport_is_configured_from_the_one_policy():
    policy = RetryPolicy(attempts=4, first_pause=0.5, max_pause=3, connect_timeout=7, read_timeout=11)
    s3 = S3("http://127.0.0.1:9", "us-east-1", "AKIAFAKE", "fake-secret", retry=policy)
    assert s3.lister.retry is policy
    assert s3.lister.transport._timeout.connect_timeout == 7 and s3.lister.transport._timeout.read_timeout == 11
    config = s3.boto.meta.config
    assert (config.connect_timeout, config.read_timeout) == (7, 11)
    assert config.retries["total_max_attempts"] == 1  # botocore's own retries off: the policy's handler retries
    options, retries = s3.store("b").client_options, s3.store("b").retry_config
    assert (options["connect_timeout"], options["read_timeout"]) == ("7s", "11s")
    assert retries is not None and retries["max_retries"] == 3
    backoff = {"init_backoff": timedelta(seconds=0.5), "max_backoff": timedelta(seconds=3), "base": 2}
    assert retries["backoff"] == backoff


def test_a_file_is_put_whole_in_one_request_under_its_exact_key():
    """The manifest's PUT, streamed from its file: every byte sent, the key quoted once, the ETag given back."""
    fake = FakeS3(lambda method, path, query: (200, {"ETag": '"0123456789abcdef0123456789abcdef"'}, b""))
    body = b"{" + b"x" * 300_000 + b"}"
    with fake.running() as s3:
        etag = s3.put_file("b", "night ly/prod+x/_backup_metadata.json", io.BytesIO(body), len(body), {})
    assert etag == "0123456789abcdef0123456789abcdef"
    assert [(method, path) for method, path, _ in fake.requests] == [
        ("PUT", "/b/night%20ly/prod%2Bx/_backup_metadata.json")
    ]
    assert fake.bodies == [body]


def test_a_server_without_delete_objects_gets_one_delete_a_key_from_then_on():
    """Google Cloud Storage's S3 API answers DeleteObjects 501: each key is deleted alone, and the next call
    does not ask for DeleteObjects again."""

    def answer(method: str, path: str, query: dict[str, str]) -> Answer:
        if method == "POST" and "delete" in query:
            return 501, {}, error("NotImplemented", "not implemented")
        return 204, {}, b""

    fake = FakeS3(answer)
    with fake.running() as s3:
        s3.retry = QUICK
        assert s3.delete_objects("b", ["x/1", "x 2"]) == []
        assert s3.delete_objects("b", ["x/3"]) == []
    assert [(method, path) for method, path, _ in fake.requests] == [
        ("POST", "/b"),
        ("DELETE", "/b/x/1"),
        ("DELETE", "/b/x%202"),
        ("DELETE", "/b/x/3"),
    ]
