"""verify-backup: every file of a backup re-hashed against its manifest (missing, corrupt, extra)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ops.backup.paths import member
from ops.backup.store import METADATA_FILE, load_manifest, objects_by_bucket, resolve_backup
from ops.config import Config
from ops.digest import file_digest
from ops.errors import OperationFailed, OpsError
from ops.report import Result, Table


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
        """The problems, then one closing line a person (or grep) reads: OK or FAILED."""
        problems = [f"{kind}: {item}" for kind in ("missing", "corrupt", "extra") for item in getattr(self, kind)]
        lines = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        if self.ok:
            lines.append(f"OK: {self.checked:,} files, {self.bytes / 2**20:,.1f} MiB, all match ({self.path})")
        else:
            counts = ", ".join(
                f"{len(getattr(self, kind))} {kind} ({', '.join(getattr(self, kind)[:3])}"
                f"{', ...' if len(getattr(self, kind)) > 3 else ''})"
                for kind in ("missing", "corrupt", "extra")
                if getattr(self, kind)
            )
            lines.append(f"FAILED: {counts} in {self.path}")
        return "\n".join(lines)

    def failure(self) -> OpsError | None:
        return None if self.ok else OperationFailed(f"backup {self.path} does not match its manifest")


def verify_backup(config: Config, *, backup: str | None, env: str | None) -> VerifyResult:
    from ops.backup import offsite

    remote = offsite.parse(config, backup)
    if remote:
        return offsite.verify_remote(config, remote[0], config.env(env or config.workflows.prod), remote[1])
    path = resolve_backup(config, backup, env)
    metadata = load_manifest(path)
    result = VerifyResult(str(path))
    expected = set()
    what = f"{METADATA_FILE} of {path.name}"
    for bucket, objects in objects_by_bucket(metadata).items():
        for key, entry in objects.items():
            file = member(path, entry.get("path", ""), what)
            expected.add(file)
            result.checked += 1
            result.bytes += entry["size"]
            if not file.is_file():
                result.missing.append(f"{bucket}/{key}")
            elif file.stat().st_size != entry["size"] or file_digest(file) != entry["sha256"]:
                result.corrupt.append(f"{bucket}/{key}")
    for relative, digest in metadata.get("artifacts", {}).items():
        file = member(path, relative, what)
        expected.add(file)
        result.checked += 1
        if not file.is_file():
            result.missing.append(relative)
        elif file_digest(file) != digest:
            result.corrupt.append(relative)
    ignored = {path / METADATA_FILE}
    result.extra = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p not in expected and p not in ignored
    )
    return result
