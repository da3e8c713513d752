"""Off-site copies of sealed backups: `--copy-to TARGET`, `verify-backup --backup TARGET:latest`, restore.

A backup on the laptop that made it is not a backup. After a local backup is sealed, its folder
is copied to a backup target (any S3 endpoint: another cloud's bucket, MinIO, another Supabase
project's bucket) with the local layout, `<prefix>/<env>-<ref>/<time>/...` (full backups under
`<prefix>/full/<env>-<ref>/`). Copies are incremental: an object the previous remote backup
already holds is copied server-side (no bytes through here), and one already there is skipped.
The manifest goes last, so a half-copied backup is never sealed remotely. Retention is decided
from the remote series alone, by the local series' rules (`backup.retention`): a CI runner starts
with no local backups, and what it lacks says nothing about what the target should keep. A remote
backup is removed manifest first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ops.backup import manifest, pool, records
from ops.backup.paths import member, unsafe
from ops.backup.retention import Judged, judge_series, ours, retention
from ops.backup.store import METADATA_FILE, WRITING_MARK, load_manifest
from ops.config import BackupTarget, Config, Environment, RetentionPolicy
from ops.errors import OperationFailed, UserError
from ops.report import Result, progress
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, ObjectList
from ops.s3.client import S3
from ops.stamps import stamp_order
from ops.storage.parallel import failure_report, run_parallel


def remote_base(target: BackupTarget, env_folder: str, full: bool) -> str:
    parts = [target.prefix, "full" if full else "", env_folder]
    return "/".join(p for p in parts if p) + "/"


def remote_names(s3: S3, target: BackupTarget, base: str) -> list[str]:
    """The folder names directly under `base`: every remote backup there, sealed or not."""
    return [folder[len(base) :].rstrip("/") for folder in s3.list_folders(target.bucket, base)]


def sealed_remote(s3: S3, target: BackupTarget, base: str) -> list[str]:
    """Names of the remote backups under `base` that hold a manifest (sealed), oldest first.

    The backups' folders, then one short listing for each one's manifest: listing `base` whole would read
    every object of every backup in the series (100,000 objects a backup: 100 pages each)."""
    names = [
        name
        for name in remote_names(s3, target, base)
        if f"{base}{name}/{METADATA_FILE}" in s3objects.list_objects(s3, target.bucket, f"{base}{name}/{METADATA_FILE}")
    ]
    # A backup's name is one folder name (a time); `..` or `` under the prefix is no backup of ours.
    return sorted((n for n in names if not unsafe(n)), key=lambda n: stamp_order(Path(n)))


def unsealed_remote(s3: S3, target: BackupTarget, base: str) -> list[str]:
    """Names of the remote backups under `base` with keys but no manifest (being made, or killed), oldest first."""
    names: dict[str, bool] = {}
    for key in s3objects.list_objects(s3, target.bucket, base):
        name, _, rest = key[len(base) :].partition("/")
        names[name] = names.get(name, False) or rest == METADATA_FILE
    return sorted((n for n, sealed in names.items() if not sealed and ours(n)), key=lambda n: stamp_order(Path(n)))


@dataclass
class OffsiteResult(Result):
    target: str
    backup: str
    remote: str
    uploaded: int = 0
    copied_server_side: int = 0
    already_there: int = 0
    removed: list[str] = field(default_factory=list)
    kept_because: str = ""  # why remote retention removed nothing
    seconds: float = 0.0


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_backup(
    config: Config, target: BackupTarget, backup: Path, *, env: Environment, full: bool, policy: RetentionPolicy
) -> OffsiteResult:
    """Copy one sealed local backup of `env` to `target`, incrementally, the manifest last; then apply
    retention to the remote series. Under the series lock, as a `--to` run is."""
    from ops.backup import lock

    s3 = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    with lock.held(s3, target, env):
        return copy_locked(config, s3, target, backup, full=full, policy=policy)


def copy_locked(
    config: Config, s3: S3, target: BackupTarget, backup: Path, *, full: bool, policy: RetentionPolicy
) -> OffsiteResult:
    started = time.monotonic()
    metadata = load_manifest(backup)
    base = remote_base(target, backup.parent.name, full)
    prefix = f"{base}{backup.name}/"
    result = OffsiteResult(target.name, str(backup), f"{target.bucket}/{prefix}")
    here = s3objects.list_objects(s3, target.bucket, prefix)
    previous = metadata.get("previous")
    before: dict[str, ObjectInfo] = {}
    if previous and f"{base}{previous}/{METADATA_FILE}" in s3objects.list_objects(
        s3, target.bucket, f"{base}{previous}/{METADATA_FILE}"
    ):
        before = s3objects.list_objects(s3, target.bucket, f"{base}{previous}/")
    files = wanted_files(backup, metadata)
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
    records.note(s3, target, prefix, "sealed", True, {"backup": backup.name})
    result.removed, result.kept_because = remote_retention(
        s3, target, base, str(metadata.get("env")), policy, backup.name
    )
    if result.kept_because:
        progress(f"warning: {target.name}: no old remote backup removed: {result.kept_because}")
    result.seconds = round(time.monotonic() - started, 3)
    progress(
        f"{target.name}: {backup.name} copied off-site ({result.uploaded} uploaded, "
        f"{result.copied_server_side} copied server-side, {result.already_there} already there)"
    )
    return result


def wanted_files(backup: Path, metadata: dict) -> dict[str, str]:
    """Every file of a local backup but its manifest, with its MD5 (objects: from the manifest)."""
    files: dict[str, str] = {}
    what = f"{METADATA_FILE} of {backup.name}"
    for objects in metadata.get("buckets", {}).values():
        for entry in objects.get("manifest", {}).values():
            member(backup, entry.get("path", ""), what)
            files[entry["path"]] = entry["md5"]
    for relative in metadata.get("artifacts", {}):
        files[relative] = md5_of(member(backup, relative, what))
    return files


def fetch_manifest(s3: S3, target: BackupTarget, key: str, folder: Path) -> Path:
    """A remote manifest, streamed into `folder` (made here) as a backup folder's manifest; `folder`."""
    folder.mkdir()
    with s3.get_object(target.bucket, key) as response, (folder / METADATA_FILE).open("wb") as out:
        for chunk in response.iter_raw():
            out.write(chunk)
    return folder


def remote_summary(s3: S3, target: BackupTarget, key: str) -> dict:
    """A remote manifest without its objects: its first line (format 2), else the whole of it; one that
    cannot be read as a manifest is named (exit 1), never a crash of every run after it."""
    from ops.backup.retention import backup_size

    read, first_line_read, summary = bytearray(), False, None
    try:
        with s3.get_object(target.bucket, key) as response:
            for chunk in response.iter_raw():
                read += chunk
                if not first_line_read and b"\n" in read:
                    first_line_read = True
                    summary = manifest.parse_head(read.split(b"\n", 1)[0].decode("utf-8"))
                    if summary is not None:
                        break  # a format-2 manifest's objects are not needed
        if summary is None:
            summary = json.loads(bytes(read))
        backup_size(summary)  # the figures retention reads from it
    except (ValueError, TypeError, AttributeError) as error:
        raise OperationFailed(
            f"{target.name}: {target.bucket}/{key} is not a manifest this tool can read ({type(error).__name__}); "
            "it was not written by this tool or was damaged: move that backup's keys aside, then run again"
        ) from None
    return summary


def remote_series(s3: S3, target: BackupTarget, base: str, env: str) -> list[Judged]:
    """The sealed remote backups under `base`, oldest first, judged from their own manifests."""
    names = sealed_remote(s3, target, base)
    return judge_series(env, [(name, remote_summary(s3, target, f"{base}{name}/{METADATA_FILE}")) for name in names])


def remote_retention(
    s3: S3, target: BackupTarget, base: str, env: str, policy: RetentionPolicy, made: str
) -> tuple[list[str], str]:
    """Apply the series rules (`retention`) to the remote series under `base` after the backup `made`;
    what was removed, or why nothing was. Each is unsealed (its manifest removed) first."""
    doomed, blocked = retention(remote_series(s3, target, base, env), policy, made)
    for name in doomed:
        s3.delete_objects(target.bucket, [f"{base}{name}/{METADATA_FILE}"])  # unsealed first
        records.remove(s3, target, f"{base}{name}/")
        keys = sorted(s3objects.list_objects(s3, target.bucket, f"{base}{name}/"))
        for start in range(0, len(keys), 1000):
            s3.delete_objects(target.bucket, keys[start : start + 1000])
    return [f"{base}{name}" for name in doomed], blocked


# ---------------------------------------------------------------- reading a remote backup


def parse(config: Config, backup: str | None) -> tuple[BackupTarget, str] | None:
    """`TARGET:latest` or `TARGET:<time>` naming a remote backup; None for a local one."""
    if not backup or ":" not in backup:
        return None
    name, _, when = backup.partition(":")
    if name not in config.backup_targets:
        return None
    return config.target(name), when or "latest"


def remote_series_bases(s3: S3, target: BackupTarget, env: Environment) -> list[tuple[str, str]]:
    """Each series of `env` at the target, named and with its base: all buckets, full snapshots, then
    each backup of some buckets (`<env>-<ref>+avatars/`)."""
    folder = env.folder
    some = remote_base(target, folder + "+", False).rstrip("/")
    listed = {key[len(some) :].split("/")[0] for key in s3objects.list_objects(s3, target.bucket, some)}
    partial = sorted(buckets for buckets in listed if not unsafe(f"{folder}+{buckets}"))
    return [
        ("storage", remote_base(target, folder, False)),
        ("full", remote_base(target, folder, True)),
        *[(f"storage+{buckets}", remote_base(target, f"{folder}+{buckets}", False)) for buckets in partial],
    ]


def locate(config: Config, target: BackupTarget, env: Environment, when: str) -> tuple[S3, str]:
    """The remote prefix of `env`'s backup `when` (a folder name in any of its series, or with 'latest'
    the newest sealed of all its buckets or a full snapshot)."""
    s3 = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    folder = env.folder
    bases = remote_series_bases(s3, target, env)[: 2 if when == "latest" else None]
    found = [(name, base) for _, base in bases for name in sealed_remote(s3, target, base)]
    if when != "latest":
        found = [(name, base) for name, base in found if name == when]
    else:  # a name that is no time was not made by this tool: never `latest`
        found = [(name, base) for name, base in found if ours(name)]
    if not found:
        raise UserError(
            f"no sealed backup {when} of {env.name} at {target.name} "
            f"({target.bucket}/{remote_base(target, folder, False)}); copy one with --copy-to"
        )
    name, base = max(found, key=lambda item: stamp_order(Path(item[0])))
    return s3, f"{base}{name}/"


@contextmanager
def backup_folder(config: Config, backup: str | None, env: Environment, *, dry_run: bool = False) -> Iterator[Path]:
    """The folder of a local backup, or of a remote one (`TARGET:<time>`) fetched into tmp/ and removed
    after. A dry run fetches the manifest alone."""
    from ops.backup.store import resolve_backup

    remote = parse(config, backup)
    if not remote:
        yield resolve_backup(config, backup, env.name)
        return
    scratch = config.root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fetched = download(config, remote[0], env, remote[1], scratch, manifest_only=dry_run)
    try:
        yield fetched
    finally:
        shutil.rmtree(fetched, ignore_errors=True)


def refuse_outside(prefix: str, relatives: list[str], where: str) -> None:
    """Refuse (exit 1, before anything is written) paths that would not stay inside the fetch folder."""
    bad = [relative for relative in relatives if unsafe(relative)]
    if bad:
        named = ", ".join(repr(prefix + b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise OperationFailed(
            f"{where} names {len(bad)} path(s) that would land outside the restore folder: {named}; "
            "the remote backup was tampered with (or not written by this tool). Nothing was fetched."
        )


def unlisted(target: BackupTarget, prefix: str, *, missing: list[str], stray: list[str]) -> None:
    """Refuse (exit 1, before anything is fetched) a remote backup whose files are not those its manifest names."""
    problems = [
        f"{len(keys)} {kind} ({', '.join(repr(k) for k in keys[:5])}{', ...' if len(keys) > 5 else ''})"
        for kind, keys in (("missing", missing), ("not in its manifest", stray))
        if keys
    ]
    if problems:
        raise OperationFailed(
            f"{target.name}: {prefix} does not match its manifest: {'; '.join(problems)}; nothing was fetched "
            f"or restored (`inv verify-backup --backup {target.name}:{Path(prefix.rstrip('/')).name}` lists them)"
        )


@dataclass(frozen=True)
class Remote:
    """A remote backup ready to be fetched: its manifest (as stored, and read), and each file by its relative
    path with the key it is read from, every one checked by `fetched_from`."""

    s3: S3
    target: BackupTarget
    prefix: str
    metadata: bytes
    listed: dict
    sources: dict[str, str]

    @property
    def objects(self) -> set[str]:
        """The relative paths of its objects (the rest are the dump, the config export, the secret names)."""
        return set(self.sources) - set(self.listed.get("artifacts", {}))


def remote_backup(config: Config, target: BackupTarget, env: Environment, when: str) -> Remote:
    """The remote backup `when` of `env`, its keys and paths checked, nothing fetched yet.

    Every key under the backup's prefix, and every path its manifest names, must map inside a
    folder by the rule local backups are read with (`paths.unsafe`), and the keys must be the files
    the manifest names (its objects' blobs in the pool, for a backup written with one); otherwise
    they are named and refused."""
    s3, prefix = locate(config, target, env, when)
    keys = s3objects.list_objects(s3, target.bucket, prefix)
    refuse_outside(prefix, [key[len(prefix) :] for key in keys], f"{target.name}:{target.bucket}/{prefix}")
    with s3.get_object(target.bucket, prefix + METADATA_FILE) as response:
        metadata = b"".join(response.iter_raw())
    try:
        listed = json.loads(metadata)
        sources = fetched_from(s3, target, env, prefix, listed, keys)
    except (ValueError, TypeError, AttributeError, KeyError):
        raise OperationFailed(
            f"{target.name}: {prefix}{METADATA_FILE} is not a manifest; nothing was fetched"
        ) from None
    return Remote(s3, target, prefix, metadata, listed, sources)


def download(
    config: Config,
    target: BackupTarget,
    env: Environment,
    when: str,
    into: Path,
    *,
    manifest_only: bool = False,
    objects: bool = True,
    remote: Remote | None = None,
) -> Path:
    """Fetch a remote backup into a new folder under `into` (for restore-storage); returns it. Only the
    files the manifest names are fetched (`remote_backup` checks them first), each created anew, never
    over another; a dry run fetches the manifest alone, and without `objects` the rest but its objects.
    `remote`: the backup as `remote_backup` found it, where the caller has it already."""
    remote = remote or remote_backup(config, target, env, when)
    folder = Path(tempfile.mkdtemp(prefix="offsite-", dir=into))
    with open(os.open(folder / METADATA_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(remote.metadata)
    wanted = [] if manifest_only else sorted(set(remote.sources) - (set() if objects else remote.objects))

    def fetch(_: str, info: ObjectInfo) -> None:
        path = folder / info.key
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out,
            remote.s3.get_object(target.bucket, remote.sources[info.key]) as response,
        ):
            for chunk in response.iter_raw():
                out.write(chunk)

    failures = run_parallel(
        [("offsite", ObjectList(ObjectInfo(k, 0, "") for k in wanted))],
        fetch,
        config.storage.jobs,
        f"fetched from {target.name}",
    )
    if failures:
        shutil.rmtree(folder, ignore_errors=True)
        raise OperationFailed(failure_report(failures, f"fetching {remote.prefix} from {target.name} failed"))
    final = folder.with_name(Path(remote.prefix.rstrip("/")).name + "-from-" + target.name)
    shutil.rmtree(final, ignore_errors=True)
    folder.rename(final)
    return final


def fetched_from(
    s3: S3, target: BackupTarget, env: Environment, prefix: str, listed: dict, keys: dict[str, ObjectInfo]
) -> dict[str, str]:
    """Each file of the remote backup `listed` (its manifest) by its relative path, and the key it is read
    from; refused (exit 1) when a path would leave the folder or the keys are not those it names."""
    entries = [
        (entry.get("path", ""), entry)
        for objects in listed.get("buckets", {}).values()
        for entry in objects.get("manifest", {}).values()
    ]
    artifacts = list(listed.get("artifacts", {}))
    refuse_outside(prefix, [p for p, _ in entries] + artifacts, f"{target.name}: {prefix}{METADATA_FILE}")
    sources = {relative: prefix + relative for relative in artifacts}
    missing: list[str] = []
    if pool.pooled(listed):
        blobs = pool.present(s3, target, pool.pool_prefix(target, env))
        for relative, entry in entries:
            sources[relative] = pool.blob_key(pool.pool_prefix(target, env), entry.get("sha256"))
            if entry.get("sha256") not in blobs:
                missing.append(sources[relative])
    else:
        sources.update((relative, prefix + relative) for relative, _ in entries)
    here = {key for key in sources.values() if key.startswith(prefix)}
    unlisted(
        target,
        prefix,
        missing=sorted(missing + [key for key in sources.values() if key.startswith(prefix) and key not in keys]),
        stray=sorted(keys.keys() - here - {prefix + METADATA_FILE, prefix + WRITING_MARK}),
    )
    return sources
