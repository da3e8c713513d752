"""What the backup tests share: the prod series' prefixes at the backup target, reading it back, and a
scratch environment (its own migrated database and S3 server) for drills."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROD_REF = "qfdztdgublwlmewobxmx"
BASE = f"nightly/prod-{PROD_REF}/"
LOCKS = f"nightly/locks/prod-{PROD_REF}/"
RECORDS = f"nightly/records/prod-{PROD_REF}/"
POOL = f"nightly/blobs/prod-{PROD_REF}/"


def blob_key(body: bytes) -> str:
    """Where the prod series' pool holds an object of these bytes."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{POOL}{digest[:2]}/{digest}"


def remote_names(server, base: str = BASE) -> dict[str, bool]:
    """Each remote backup's name under `base`, and whether it is sealed (holds a manifest)."""
    names: dict[str, bool] = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket="ops-backups", Prefix=base):
        for item in page.get("Contents", []):
            name = item["Key"][len(base) :].split("/")[0]
            names[name] = names.get(name, False) or item["Key"] == f"{base}{name}/_backup_metadata.json"
    return names


def add_scratch(project, pg, root: Path, keys: tuple[str, str]):
    """A section marked scratch = true with a new migrated database and an S3 server (started, its
    buckets made) at `root`; the server, for the caller to stop."""
    from devstack import localstack
    from lib.db import new_database
    from lib.s3 import s3_secrets
    from ops import config as ops_config

    url = new_database(pg, "scratch")
    server = localstack.start_s3(*keys, root=root)
    server.create_buckets(ops_config.load(Path(__file__).parents[2] / "environments.ini").storage.buckets)
    project.envs["scratch"] = {
        "ref": "scratchprojectref001",
        "db_url": url,
        "storage_url": server.url,
        "scratch": "true",
    }
    project.secrets.update(s3_secrets("scratch", *keys))
    return server


@contextmanager
def behind(project, server, proxy) -> Iterator:
    """The backup target `server` reached through `proxy` (a FaultProxy in front of it, started here) for
    the body of the `with`; reached directly again, the proxy stopped, after."""
    proxy.start()
    project.extra = project.extra.replace(f"storage_url = {server.url}\n", f"storage_url = {proxy.url}\n")
    try:
        yield proxy
    finally:
        proxy.stop()
        project.extra = project.extra.replace(f"storage_url = {proxy.url}\n", f"storage_url = {server.url}\n")
