"""S3 access to an environment's storage: clients, listings, and content hashes of objects."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ops.config import Environment
from ops.errors import OperationFailed, UserError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Supabase caps a single PutObject by the plan's standard-upload limit (50 MiB on the sample
# config, less on some plans): anything from 16 MiB on goes up in 16 MiB parts, Storage's own size.
MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 16 << 20
AUTH_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthorizationHeaderMalformed", "AccessDenied",
              "InvalidSignature", "ExpiredToken"}
READ_CHUNK = 1 << 20
MD5_METADATA = "md5chksum"  # rclone's convention for the MD5 of a multipart upload
COPIED_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")


def client(env: Environment, *, max_pool: int = 16, timeout: int = 10, attempts: int = 8) -> S3Client:
    import boto3
    from botocore.config import Config

    url = env.require_storage()
    key_id, secret = env.secret(env.s3_key_id_var), env.secret(env.s3_secret_var)
    missing = [var for var, value in ((env.s3_key_id_var, key_id), (env.s3_secret_var, secret)) if not value]
    if missing:
        raise UserError(f"{env.name}: storage needs S3 keys: set {' and '.join(missing)}")
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=env.storage_region or "us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path"},
            # Supabase's S3 endpoint rejects Content-MD5 and the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=60,
            max_pool_connections=max_pool,
            tcp_keepalive=True,
            parameter_validation=False,  # our calls are fixed; validation costs CPU on every request
        ),
    )
    speak_supabase(s3, env)
    return s3


def speak_supabase(s3: S3Client, env: Environment) -> None:
    """What Supabase Storage's S3 dialect needs beyond plain boto3 (measured against its server)."""
    events = s3.meta.events
    # Storage reads a DeleteObjects body only when it is declared as XML.
    events.register("before-sign.s3.DeleteObjects", _declare_xml)

    def complete_error(http_response: Any, parsed: dict, **_: Any) -> None:
        status = http_response.status_code
        if status < 300:
            return
        error = parsed.setdefault("Error", {})
        if not error.get("Code") or not error.get("Message"):
            # Storage namespaces its error XML; botocore then finds neither Code nor Message.
            code, message = error_from_body(http_response.content or b"")
            error["Code"] = error.get("Code") or code or str(status)
            error["Message"] = error.get("Message") or message or HTTPStatus(status).phrase
        if status in (401, 403) or error["Code"] in AUTH_CODES:
            raise UserError(
                f"{env.name}: storage at {env.storage_url} refused the request ({status} {error['Code']}: "
                f"{error['Message']}): check {env.s3_key_id_var}, {env.s3_secret_var} and storage_region "
                f"({env.storage_region}, the region shown in the dashboard's S3 settings)"
            )

    events.register("after-call.s3", complete_error)


def _declare_xml(request: Any, **_: Any) -> None:
    request.headers["Content-Type"] = "application/xml"


def error_from_body(body: bytes) -> tuple[str, str]:
    """Code and Message of an S3 error document, whatever its XML namespace."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return "", ""
    found = {element.tag.rpartition("}")[2]: (element.text or "").strip() for element in root.iter()}
    return found.get("Code", ""), found.get("Message", "")


def describe(error: BaseException) -> str:
    """One line for a failed object: HTTP status, the server's code and message."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        details = error.response.get("Error", {})
        return f"{status} {details.get('Code', '')}: {details.get('Message', '')}".strip()
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


def worth_retrying(error: BaseException) -> bool:
    """A client error (4xx) stays an error on every attempt, except a timeout or throttling."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return status >= 500 or status in (408, 429)
    return True


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str

    @property
    def simple_md5(self) -> str | None:
        """The MD5 of the content when the ETag is one (not a multipart ETag like `abc-3`)."""
        return self.etag if len(self.etag) == 32 and "-" not in self.etag else None


def clean_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def bucket_exists(s3: S3Client, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def list_objects(s3: S3Client, bucket: str) -> dict[str, ObjectInfo]:
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = ObjectInfo(item["Key"], item["Size"], clean_etag(item["ETag"]))
    return objects


def metadata_md5(metadata: dict[str, str]) -> str | None:
    for key, value in metadata.items():
        if key.lower() == MD5_METADATA:
            try:
                return base64.b64decode(value).hex()
            except ValueError:
                return None
    return None


def recorded_md5(s3: S3Client, bucket: str, info: ObjectInfo) -> str | None:
    """The object's MD5 without reading it: its ETag when that is one, else the md5 recorded at upload."""
    if info.simple_md5:
        return info.simple_md5
    return metadata_md5(s3.head_object(Bucket=bucket, Key=info.key).get("Metadata", {}))


def read_md5(s3: S3Client, bucket: str, key: str) -> str:
    """The object's MD5 by reading it whole (the last resort)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.md5()
    for chunk in iter(lambda: body.read(READ_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def content_md5(s3: S3Client, bucket: str, info: ObjectInfo) -> str:
    return recorded_md5(s3, bucket, info) or read_md5(s3, bucket, info.key)


@dataclass
class Download:
    size: int
    md5: str
    sha256: str
    headers: dict[str, Any]
    metadata: dict[str, str]


def download(s3: S3Client, bucket: str, key: str, out: BinaryIO, expected: ObjectInfo | None = None, *,
             sha256: bool = True) -> Download:
    """Stream an object into `out`, hashing it, and check it arrived whole (sha256 for backups only)."""
    response = s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    md5, size = hashlib.md5(), 0
    digest = hashlib.sha256() if sha256 else None
    for chunk in iter(lambda: body.read(READ_CHUNK), b""):
        out.write(chunk)
        md5.update(chunk)
        if digest:
            digest.update(chunk)
        size += len(chunk)
    got = Download(
        size, md5.hexdigest(), digest.hexdigest() if digest else "",
        {h: value for h in COPIED_HEADERS if (value := cast(dict[str, Any], response).get(h))},
        {k: v for k, v in response.get("Metadata", {}).items() if k.lower() != MD5_METADATA},
    )
    length = response.get("ContentLength")
    want_md5 = clean_etag(response.get("ETag", ""))
    if (length is not None and size != length) or (expected and size != expected.size):
        raise OperationFailed(f"{bucket}/{key}: truncated download ({size} of {length} bytes)")
    if len(want_md5) == 32 and "-" not in want_md5 and want_md5 != got.md5:
        raise OperationFailed(f"{bucket}/{key}: downloaded content does not match its ETag")
    return got


def upload(s3: S3Client, bucket: str, key: str, source: BinaryIO, got: Download) -> None:
    """Upload content whose MD5 we know; multipart uploads record it like rclone does."""
    from boto3.s3.transfer import TransferConfig

    extra: dict[str, Any] = dict(got.headers)
    metadata = dict(got.metadata)
    if got.size >= MULTIPART_THRESHOLD:
        metadata[MD5_METADATA] = base64.b64encode(bytes.fromhex(got.md5)).decode()
    extra["Metadata"] = metadata
    source.seek(0)
    if got.size < MULTIPART_THRESHOLD:
        response = s3.put_object(Bucket=bucket, Key=key, Body=source, **extra)
        etag = clean_etag(response.get("ETag", ""))
        if len(etag) == 32 and etag != got.md5:
            raise OperationFailed(f"{bucket}/{key}: the server stored different content than was sent")
        return
    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                            use_threads=False)
    s3.upload_fileobj(source, bucket, key, ExtraArgs=extra, Config=config)
