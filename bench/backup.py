"""Lines 13-14: remote-first backups (`--to`) of 100,000 objects with 1 % changed, and `inv drill` of a full
backup against `psql -f` of its dump plus `rclone copy` of its objects; on local S3 servers and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bench.harness import REPO, Bench, plain, tool
from bench.storage import SCALE, fill_on_disk, scale_objects
from bench.sync_data import BULK_SQL, clone, count_rows, vacuum
from devstack import localstack
from devstack.faultproxy import FaultProxy
from ops import config as ops_config
from ops.backup import manifest
from ops.backup import scratch as wiping
from ops.backup.store import METADATA_FILE

TARGET_BUCKET = "ops-backups"
TARGET_PREFIX = "nightly"
CHANGED_EVERY = 100  # 1 %


def serve(bench: Bench, servers: list, env: str, objects: dict[str, int] | None = None) -> localstack.LocalS3:
    """An S3 server (rclone serve s3) for the section `env`, every configured bucket made and `objects`
    written straight into its folder before it starts; its keys in the bench's environment."""
    root = bench.work / env
    for bucket in [*ops_config.load(REPO / "environments.ini").storage.buckets, TARGET_BUCKET]:
        (root / bucket).mkdir(parents=True, exist_ok=True)
    if objects:
        fill_on_disk(root, objects)
    key_id, secret = f"BENCH{env.upper()}{secrets.token_hex(4).upper()}", secrets.token_urlsafe(20)
    server = localstack.start_s3(key_id, secret, root=root)
    servers.append(server)
    prefix = f"OPS_{env.upper()}"
    bench.environ[f"{prefix}_S3_ACCESS_KEY_ID"], bench.environ[f"{prefix}_S3_SECRET_ACCESS_KEY"] = key_id, secret
    return server


def add_sections(bench: Bench, sections: dict[str, dict[str, str]]) -> None:
    ini = Path(bench.environ["OPS_ENVIRONMENTS"])
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n" for name, values in sections.items()
    )
    ini.write_text(ini.read_text().replace("[sync-data]", text + "[sync-data]"))


def ref(env: str) -> str:
    return (env + "x" * 20)[:20]


def inv_json(bench: Bench, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args, "--json"],
        cwd=bench.work,
        env=bench.environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"inv {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def rclone_env(bench: Bench, remotes: dict[str, localstack.LocalS3]) -> dict[str, str]:
    environ = {**os.environ, "RCLONE_CONFIG": str(bench.work / "none.conf")}
    for name, server in remotes.items():
        upper = name.upper()
        environ.update(
            {
                f"RCLONE_CONFIG_{upper}_TYPE": "s3",
                f"RCLONE_CONFIG_{upper}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{upper}_ENDPOINT": server.url,
                f"RCLONE_CONFIG_{upper}_ACCESS_KEY_ID": server.key_id,
                f"RCLONE_CONFIG_{upper}_SECRET_ACCESS_KEY": server.secret,
                f"RCLONE_CONFIG_{upper}_FORCE_PATH_STYLE": "true",
            }
        )
    return environ


def bench_remote(bench: Bench, servers: list, pg: localstack.LocalPostgres) -> None:
    target = serve(bench, servers, "offsite")
    add_sections(bench, {"offsite": {"storage_url": target.url, "bucket": TARGET_BUCKET, "prefix": TARGET_PREFIX}})
    bench_remote_first(bench, servers)
    bench_drill(bench, servers, pg, target)


def bench_remote_first(bench: Bench, servers: list) -> None:
    """A first full remote backup of 100,000 objects, then one after 1 % of them changed (timed, its peak RSS
    taken), then one after another 1 % changed, read from the source through a proxy that logs each request
    it answers (devstack's FaultProxy, with no faults): the objects read are what the server was asked for.
    The timed run goes straight to the source: the proxy is a Python relay in the bench's own process,
    on the same two cores, and the time of the run it counts is printed beside."""
    objects = scale_objects(SCALE)
    source = serve(bench, servers, "remsrc", objects)
    same = serve(bench, servers, "remdst", objects)  # the same bytes: a sync with nothing to copy
    add_sections(
        bench,
        {
            "remsrc": {"ref": ref("remsrc"), "storage_url": source.url},
            "remdst": {"ref": ref("remdst"), "storage_url": same.url},
        },
    )
    buckets = ("--buckets", "avatars")
    sync = ("sync-storage", "--from", "remsrc", "--to", "remdst", *buckets, "--jobs", "4", "--yes")
    checked = inv_json(bench, *sync)["buckets"][0]
    if checked["copied"] or checked["identical"] != SCALE:
        raise RuntimeError(f"the no-change sync found changes: {checked}")
    no_change = bench.inv_measured(*sync)
    backup = ("backup-storage", "--env", "remsrc", "--to", "offsite", *buckets)
    full = bench.inv_measured(*backup)

    change(source, sorted(objects)[1::CHANGED_EVERY])
    again = bench.inv_measured(*backup)

    changed = sorted(objects)[::CHANGED_EVERY]
    change(source, changed)
    proxy = FaultProxy(source.port).start()
    ini = Path(bench.environ["OPS_ENVIRONMENTS"])
    ini.write_text(ini.read_text().replace(f"storage_url = {source.url}\n", f"storage_url = {proxy.url}\n"))
    counted = bench.inv_measured(*backup)
    proxy.stop()
    reads = [unquote(urlsplit(path).path).lstrip("/") for _, method, path in proxy.answered if method == "GET"]
    reads = [key for key in reads if "/" in key]  # an object's path; a listing's is the bucket's alone
    print(
        f"remote: the source answered {len(proxy.answered):,} requests, {len(reads):,} object GETs "
        f"(that run, through the proxy: {counted[0]:.1f} s)",
        flush=True,
    )
    bench.record(
        "remote: backup --to, 1 % changed",
        f"backup-storage --to of {SCALE:,} objects, 1 % changed",
        again[0],
        full[0],
        "our first full remote backup",
    )
    bench.record(
        "remote: backup --to, objects read",
        "  objects read from the source (GETs it answered)",
        len(reads),
        len(changed),
        "the changed objects",
        unit=" objects",
        also=sorted(reads) == changed,
    )
    bench.record(
        "remote: backup --to, peak RSS",
        "  peak RSS of that backup",
        again[1],
        no_change[1],
        "our no-change sync",
        unit=" MiB",
    )


def change(source: localstack.LocalS3, keys: list[str]) -> None:
    """New bytes of the same size in each of `keys`, served by a fresh server (rclone's listing cache would
    hide the change)."""
    for key in keys:
        path = source.root / key
        path.write_bytes(secrets.token_bytes(path.stat().st_size))
    source.stop()
    source.start()


def bench_drill(bench: Bench, servers: list, pg: localstack.LocalPostgres, target: localstack.LocalS3) -> None:
    """`inv drill` of a remote-first full backup (the sync-data bench's rows, the storage bench's 1,010 objects)
    against restoring the same dump with `psql -f` and copying the same objects with `rclone copy`."""
    ensure_template(pg)
    source_db = clone(pg, "drill_src")
    localstack.run_sql(source_db, BULK_SQL)
    vacuum(source_db)
    rows = count_rows(source_db)
    objects = {f"avatars/users/{i:04d}/avatar.png": 64 << 10 for i in range(1000)} | {
        f"resource-library/videos/{i}.mp4": 16 << 20 for i in range(10)
    }
    source = serve(bench, servers, "drillsrc", objects)
    scratch = serve(bench, servers, "scratch")
    reference = serve(bench, servers, "drillref")
    add_sections(
        bench,
        {
            "drillsrc": {"ref": ref("drillsrc"), "db_url": source_db, "storage_url": source.url},
            "scratch": {
                "ref": ref("scratch"),
                "db_url": clone(pg, "drill_scratch"),
                "storage_url": scratch.url,
                "scratch": "true",
            },
        },
    )
    bench.inv("backup", "--env", "drillsrc", "--to", "offsite", "--yes")
    started = time.perf_counter()
    drilled = inv_json(bench, "drill", "--env", "drillsrc", "--backup", "offsite:latest", "--into", "scratch", "--yes")
    ours = time.perf_counter() - started
    print(f"remote: {drilled.get('verdict')}", flush=True)
    if not drilled.get("ok"):
        raise RuntimeError(f"the drill failed: {drilled.get('verdict')}")

    environ = rclone_env(bench, {"off": target, "ref": reference})
    base = f"{TARGET_PREFIX}/full/drillsrc-{ref('drillsrc')}/"
    listed = subprocess.run(
        [localstack.tool("rclone"), "lsf", "--dirs-only", f"off:{TARGET_BUCKET}/{base}"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    backup = f"{TARGET_BUCKET}/{base}{sorted(listed)[-1].rstrip('/')}"
    dump = bench.work / "drill-dump"
    subprocess.run([localstack.tool("rclone"), "copy", f"off:{backup}/database", str(dump)], env=environ, check=True)
    subprocess.run(
        [localstack.tool("rclone"), "copy", f"off:{backup}/{METADATA_FILE}", str(dump.parent / "manifest")],
        env=environ,
        check=True,
    )
    recorded = manifest.summary(dump.parent / "manifest")["rows"]
    reference_db = clone(pg, "drill_ref")
    add_sections(bench, {"drillref": {"ref": ref("drillref"), "db_url": reference_db}})
    wiping.wipe_database(ops_config.load(Path(bench.environ["OPS_ENVIRONMENTS"])).env("drillref"), list(recorded))
    started = time.perf_counter()
    subprocess.run(
        [
            tool("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            str(dump / "roles.sql"),
            "-f",
            str(dump / "schema.sql"),
            "-c",
            "SET session_replication_role = replica",
            "-f",
            str(dump / "data.sql"),
            "-d",
            plain(reference_db),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # The backup's objects are its environment's pool (every object here is unique: one blob each), the
    # same bytes the drill restores; rclone copies them as they lie.
    pool = f"{TARGET_BUCKET}/{TARGET_PREFIX}/blobs/drillsrc-{ref('drillsrc')}"
    subprocess.run(
        [localstack.tool("rclone"), "copy", "--transfers", "4", f"off:{pool}", "ref:avatars"],
        env=environ,
        check=True,
    )
    psql_and_rclone = time.perf_counter() - started
    bench.record(
        "remote: drill",
        f"drill of {rows:,} rows + {len(objects):,} objects from a remote backup",
        ours,
        psql_and_rclone,
        "psql -f of its dump + rclone copy --transfers 4 of its objects",
    )


def ensure_template(pg: localstack.LocalPostgres) -> None:
    """The migrated database the sync-data bench clones (made here when that group did not run)."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        made = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_template'").fetchone()
    if not made:
        localstack.push_migrations(pg.create_database("bench_template"))
