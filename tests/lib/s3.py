"""S3 helpers for tests: per-environment keys, filling buckets, reading them back."""

from __future__ import annotations

import hashlib

import boto3
from botocore.config import Config

S3_KEYS = {env: (f"AKIAOPSTEST{env.upper()}01", f"s3-secret-{env}-Vb93-never-print") for env in ("prod", "preprod")}


def s3_secrets(env: str, key_id: str, secret: str) -> dict[str, str]:
    prefix = "OPS_" + env.upper().replace("-", "_")
    return {f"{prefix}_S3_ACCESS_KEY_ID": key_id, f"{prefix}_S3_SECRET_ACCESS_KEY": secret}


def contents(client, bucket: str) -> dict[str, str]:
    """key -> sha256 of the content, read back from the server."""
    result = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            result[item["Key"]] = hashlib.sha256(body).hexdigest()
    return result


def fill(client, bucket: str, count: int = 0, size: int = 1024) -> None:
    for i in range(count):
        client.put_object(Bucket=bucket, Key=f"bulk/{i:04d}.bin", Body=bytes([i % 251]) * size)


def moto_client(port: int, prefix: str = ""):
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}{prefix}",
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto-secret",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def empty_bucket(client, bucket: str) -> None:
    """A bucket that exists and holds nothing (moto's state lives as long as the test session)."""
    if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
