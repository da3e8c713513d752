"""Off-site copies of sealed backups: `--copy-to TARGET`, `verify-backup --backup TARGET:latest`, restore.

A backup on the laptop that made it is not a backup. After a local backup is sealed, its folder
is copied to a backup target (any S3 endpoint: another cloud's bucket, MinIO, another Supabase
project's bucket) with the local layout, `<prefix>/<env>-<ref>/<time>/...` (full backups under
`<prefix>/full/<env>-<ref>/`). Copies are incremental: an object the previous remote backup
already holds is copied server-side (no bytes through here), and one already there is skipped.
The manifest goes last, so a half-copied backup is never sealed remotely; retention mirrors the
local series (whose rules keep the last full backup), removing a remote backup manifest first.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ops import s3objects
from ops.backup.paths import member
from ops.backup.store import METADATA_FILE, complete_backups, load_manifest
from ops.config import BackupTarget, Config, Environment
from ops.errors import OperationFailed, UserError
from ops.parallel import failure_report, run_parallel
from ops.report import Result, progress
from ops.s3base import ObjectInfo, ObjectList
from ops.s3client import S3
from ops.stamps import stamp_order


def remote_base(target: BackupTarget, env_folder: str, full: bool) -> str:
    parts = [target.prefix, "full" if full else "", env_folder]
    return "/".join(p for p in parts if p) + "/"


def sealed_remote(s3: S3, target: BackupTarget, base: str) -> list[str]:
    """Names of the remote backups under `base` that hold a manifest (sealed), oldest first."""
    names = [
        key[len(base) :].split("/")[0]
        for key in s3objects.list_objects(s3, target.bucket, base)
        if key.endswith("/" + METADATA_FILE) and key.count("/") == base.count("/") + 1
    ]
    return sorted(names, key=lambda n: stamp_order(Path(n)))


@dataclass
class OffsiteResult(Result):
    target: str
    backup: str
    remote: str
    uploaded: int = 0
    copied_server_side: int = 0
    already_there: int = 0
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_backup(config: Config, target: BackupTarget, backup: Path, *, full: bool) -> OffsiteResult:
    """Copy one sealed local backup to `target`, incrementally, the manifest last; then mirror retention."""
    started = time.monotonic()
    s3 = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    manifest = load_manifest(backup)
    base = remote_base(target, backup.parent.name, full)
    prefix = f"{base}{backup.name}/"
    result = OffsiteResult(target.name, str(backup), f"{target.bucket}/{prefix}")
    here = s3objects.list_objects(s3, target.bucket, prefix)
    previous = manifest.get("previous")
    before: dict[str, ObjectInfo] = {}
    if previous and f"{base}{previous}/{METADATA_FILE}" in s3objects.list_objects(
        s3, target.bucket, f"{base}{previous}/{METADATA_FILE}"
    ):
        before = s3objects.list_objects(s3, target.bucket, f"{base}{previous}/")
    files = wanted_files(backup, manifest)
    counting = threading.Lock()

    def count(kind: str) -> None:
        with counting:
            setattr(result, kind, getattr(result, kind) + 1)

    def send(relative: str, md5: str) -> None:
        key, path = prefix + relative, backup / relative
        if key in here and here[key].size == path.stat().st_size and here[key].md5 == md5:
            count("already_there")
            return
        earlier = before.get(f"{base}{previous}/{relative}")
        same = earlier is not None and earlier.size == path.stat().st_size and earlier.md5 == md5
        if earlier and same and s3objects.md5_of_etag(s3.copy_object(target.bucket, key, earlier.key)) == md5:
            count("copied_server_side")  # no bytes through here
            return
        got = s3objects.Content(path.stat().st_size, md5, "", {}, {})
        with path.open("rb") as handle:
            s3objects.upload(s3, target.bucket, key, handle, got)
        count("uploaded")

    sends = ObjectList(ObjectInfo(path, (backup / path).stat().st_size, md5) for path, md5 in files.items())
    failures = run_parallel(
        [("offsite", sends)],
        lambda _, info: send(info.key, info.etag),
        config.storage.jobs,
        f"copied off-site ({target.name})",
    )
    if failures:
        raise OperationFailed(
            failure_report(
                failures,
                f"off-site copy of {backup.name} to {target.name} incomplete; it is not sealed there (no manifest)",
            )
        )
    # Sealed last: only a remote backup with every file has a manifest.
    data = (backup / METADATA_FILE).read_bytes()
    s3.put_object(target.bucket, prefix + METADATA_FILE, data, {"content-type": "application/json"})
    result.removed = mirror_retention(s3, target, base, backup.parent)
    result.seconds = round(time.monotonic() - started, 3)
    progress(
        f"{target.name}: {backup.name} copied off-site ({result.uploaded} uploaded, "
        f"{result.copied_server_side} copied server-side, {result.already_there} already there)"
    )
    return result


def wanted_files(backup: Path, manifest: dict) -> dict[str, str]:
    """Every file of a local backup but its manifest, with its MD5 (objects: from the manifest)."""
    files: dict[str, str] = {}
    what = f"{METADATA_FILE} of {backup.name}"
    for objects in manifest.get("buckets", {}).values():
        for entry in objects.get("manifest", {}).values():
            member(backup, entry.get("path", ""), what)
            files[entry["path"]] = entry["md5"]
    for relative in manifest.get("artifacts", {}):
        files[relative] = md5_of(member(backup, relative, what))
    return files


def mirror_retention(s3: S3, target: BackupTarget, base: str, series: Path) -> list[str]:
    """Remove the remote backups the local series has pruned (by its rules, which keep the last full
    one); one newer than every local backup (copied from elsewhere) is left alone. Manifest first."""
    kept = [p.name for p in complete_backups(series)]
    if not kept:
        return []
    newest = stamp_order(Path(kept[-1]))
    removed = []
    for name in sealed_remote(s3, target, base):
        if name in kept or stamp_order(Path(name)) >= newest:
            continue
        s3.delete_objects(target.bucket, [f"{base}{name}/{METADATA_FILE}"])  # unsealed first
        keys = sorted(s3objects.list_objects(s3, target.bucket, f"{base}{name}/"))
        for start in range(0, len(keys), 1000):
            s3.delete_objects(target.bucket, keys[start : start + 1000])
        removed.append(f"{base}{name}")
    return removed


# ---------------------------------------------------------------- reading a remote backup


def parse(config: Config, backup: str | None) -> tuple[BackupTarget, str] | None:
    """`TARGET:latest` or `TARGET:<time>` naming a remote backup; None for a local one."""
    if not backup or ":" not in backup:
        return None
    name, _, when = backup.partition(":")
    if name not in config.backup_targets:
        return None
    return config.target(name), when or "latest"


def locate(config: Config, target: BackupTarget, env: Environment, when: str) -> tuple[S3, str]:
    """The remote prefix of `env`'s backup `when` (a folder name, or the newest sealed with 'latest')."""
    s3 = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    folder = f"{env.name}-{env.ref}"
    found = [
        (name, remote_base(target, folder, full))
        for full in (False, True)
        for name in sealed_remote(s3, target, remote_base(target, folder, full))
    ]
    if when != "latest":
        found = [(name, base) for name, base in found if name == when]
    if not found:
        raise UserError(
            f"no sealed backup {when} of {env.name} at {target.name} "
            f"({target.bucket}/{remote_base(target, folder, False)}); copy one with --copy-to"
        )
    name, base = max(found, key=lambda item: stamp_order(Path(item[0])))
    return s3, f"{base}{name}/"


@contextmanager
def backup_folder(config: Config, backup: str | None, env: Environment) -> Iterator[Path]:
    """The folder of a local backup, or of a remote one (`TARGET:<time>`) fetched into tmp/ and removed after."""
    from ops.backup.store import resolve_backup

    remote = parse(config, backup)
    if not remote:
        yield resolve_backup(config, backup, env.name)
        return
    scratch = config.root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fetched = download(config, remote[0], env, remote[1], scratch)
    try:
        yield fetched
    finally:
        shutil.rmtree(fetched, ignore_errors=True)


def download(config: Config, target: BackupTarget, env: Environment, when: str, into: Path) -> Path:
    """Fetch a remote backup into a new folder under `into` (for restore-storage); returns it."""
    s3, prefix = locate(config, target, env, when)
    folder = Path(tempfile.mkdtemp(prefix="offsite-", dir=into))
    keys = sorted(s3objects.list_objects(s3, target.bucket, prefix))

    def fetch(_: str, info: ObjectInfo) -> None:
        path = folder / info.key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out, s3.get_object(target.bucket, info.key) as response:
            for chunk in response.iter_raw():
                out.write(chunk)

    failures = run_parallel(
        [("offsite", ObjectList(ObjectInfo(k, 0, "") for k in keys))],
        fetch,
        config.storage.jobs,
        f"fetched from {target.name}",
    )
    if failures or not (folder / METADATA_FILE).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        raise OperationFailed(failure_report(failures, f"fetching {prefix} from {target.name} failed"))
    final = folder.with_name(Path(prefix.rstrip("/")).name + "-from-" + target.name)
    shutil.rmtree(final, ignore_errors=True)
    folder.rename(final)
    return final
