"""verify-backup: every file of a backup re-hashed against its manifest (missing, corrupt, extra)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from ops.backup import manifest, offsite, pool, records
from ops.backup.paths import member
from ops.backup.store import METADATA_FILE, WRITING_MARK, resolve_backup
from ops.config import BackupTarget, Config, Environment
from ops.digest import file_digest
from ops.errors import OperationFailed, OpsError
from ops.report import Result, Table
from ops.s3 import objects as s3objects


@dataclass
class VerifyResult(Result):
    path: str
    checked: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.extra)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def rows(self) -> Table:
        return Table(
            ["checked", "MiB", "missing", "corrupt", "extra"],
            [[self.checked, f"{self.bytes / 2**20:,.1f}", len(self.missing), len(self.corrupt), len(self.extra)]],
        )

    def footer(self) -> str:
        """The problems, then (when all match) the closing OK line; a failure's closing line is its error."""
        problems = [f"{kind}: {item}" for kind in ("missing", "corrupt", "extra") for item in getattr(self, kind)]
        lines = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        if self.ok:
            lines.append(f"OK: {self.checked:,} files, {self.bytes / 2**20:,.1f} MiB, all match ({self.path})")
        return "\n".join(lines)

    def verdict(self) -> str:
        """`FAILED: 1 corrupt (avatars/a.png) in <backup>`: how many of each kind, and the first three by name."""
        counts = ", ".join(
            f"{len(getattr(self, kind))} {kind} ({', '.join(getattr(self, kind)[:3])}"
            f"{', ...' if len(getattr(self, kind)) > 3 else ''})"
            for kind in ("missing", "corrupt", "extra")
            if getattr(self, kind)
        )
        return f"FAILED: {counts} in {self.path}"

    def failure(self) -> OpsError | None:
        return None if self.ok else OperationFailed(self.verdict())


def verify_backup(config: Config, *, backup: str | None, env: str | None) -> VerifyResult:
    remote = offsite.parse(config, backup)
    if remote:
        return verify_remote(config, remote[0], config.env(env or config.workflows.prod), remote[1])
    return verify_backup_folder(resolve_backup(config, backup, env))


def verify_backup_folder(path: Path) -> VerifyResult:
    """Every file of the backup in `path` re-hashed against its manifest (missing, corrupt, extra)."""
    result = VerifyResult(str(path))
    # Relative paths as text: a set of 100,000 Path objects would cost five times the memory.
    expected = {METADATA_FILE}
    what = f"{METADATA_FILE} of {path.name}"
    for bucket, key, entry in manifest.objects(path):  # one object at a time, whatever the backup's size
        relative = entry.get("path", "")
        file = member(path, relative, what)
        expected.add(str(PurePosixPath(relative)))
        result.checked += 1
        result.bytes += entry["size"]
        if not file.is_file():
            result.missing.append(f"{bucket}/{key}")
        elif file.stat().st_size != entry["size"] or file_digest(file) != entry["sha256"]:
            result.corrupt.append(f"{bucket}/{key}")
    for relative, digest in manifest.summary(path).get("artifacts", {}).items():
        file = member(path, relative, what)
        expected.add(str(PurePosixPath(relative)))
        result.checked += 1
        if not file.is_file():
            result.missing.append(relative)
        elif file_digest(file) != digest:
            result.corrupt.append(relative)
    result.extra = sorted(relative for relative in files_under(path) if relative not in expected)
    return result


def files_under(folder: Path) -> Iterator[str]:
    """Every file below `folder`, as a path relative to it (symlinks listed, never followed)."""
    for root, folders, files in os.walk(folder):
        base = os.path.relpath(root, folder)
        for name in files + [f for f in folders if os.path.islink(os.path.join(root, f))]:
            yield name if base == "." else f"{base}/{name}"


def verify_remote(config: Config, target: BackupTarget, env: Environment, when: str) -> VerifyResult:
    """Check a remote backup against its manifest: size and MD5 per file, read only where the server
    cannot vouch (an ETag that is no MD5)."""
    s3, prefix = offsite.locate(config, target, env, when)
    with s3.get_object(target.bucket, prefix + METADATA_FILE) as response:
        manifest = json.loads(b"".join(response.iter_raw()))
    present = s3objects.list_objects(s3, target.bucket, prefix)
    result = VerifyResult(f"{target.name}:{target.bucket}/{prefix}")
    expected = {prefix + METADATA_FILE, prefix + WRITING_MARK}
    entries = [
        (f"{bucket}/{key}", entry["path"], entry["size"], entry["md5"], entry.get("sha256"))
        for bucket, objects in manifest.get("buckets", {}).items()
        for key, entry in objects.get("manifest", {}).items()
    ]
    offsite.refuse_outside(
        prefix, [e[1] for e in entries] + list(manifest.get("artifacts", {})), f"{target.name}: {prefix}{METADATA_FILE}"
    )
    blobs = pool.pool_prefix(target, env) if pool.pooled(manifest) else ""
    if blobs:  # the objects are in the environment's pool, by content
        present.update(s3objects.list_objects(s3, target.bucket, blobs))
    for label, relative, size, md5, sha256 in entries:
        key = pool.blob_key(blobs, sha256) if blobs else prefix + relative
        expected.add(key)
        result.checked += 1
        result.bytes += size
        info = present.get(key)
        if info is None:
            result.missing.append(label)
        elif info.size != size or (s3objects.content_md5(s3, target.bucket, info) != md5):
            result.corrupt.append(label)
    for relative, sha256 in manifest.get("artifacts", {}).items():
        key = prefix + relative
        expected.add(key)
        result.checked += 1
        if key not in present:
            result.missing.append(relative)
            continue
        digest = hashlib.sha256()
        with s3.get_object(target.bucket, key) as response:
            for chunk in response.iter_raw():
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            result.corrupt.append(relative)
    result.extra = sorted(key[len(prefix) :] for key in present if key.startswith(prefix) and key not in expected)
    verdict = f"OK: {result.checked:,} files, all match" if result.ok else result.verdict()
    records.note(s3, target, prefix, "verify", result.ok, {"verdict": verdict, "checked": result.checked})
    return result
