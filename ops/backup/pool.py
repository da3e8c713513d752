"""The object pool of an environment at a backup target: each object's bytes once, named by their SHA-256.

A remote-first backup (`--to`) writes only what changed since the newest sealed backup, and its
manifest names every object by content (`sha256`), as restic's snapshots name their blobs: an
unchanged object costs no request at all, where copying it into each night's folder costs one
(as much as uploading it, on many servers). The pool sits beside the series, not inside them:
`<prefix>/blobs/<env>-<ref>/<first two hex digits>/<sha256>` (the fan-out keeps each folder of a
file-system-backed server small), shared by all of the environment's series (storage, full,
some buckets), so a full snapshot reuses what the nightly storage backups hold.

A blob is removed only by a sweep, run under the series lock after a backup is sealed: every
blob no sealed manifest of the environment names goes (a pruned backup's, a killed run's).
"""

from __future__ import annotations

import bisect
import re
import threading
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

from ops.config import BackupTarget, Environment
from ops.errors import OperationFailed
from ops.s3.base import ObjectInfo
from ops.s3.client import S3

LAYOUT = "pool"  # the manifest field `layout` of a backup whose objects are in the pool
FOLDER = "blobs"
SHA256 = re.compile(r"[0-9a-f]{64}")
MD5 = re.compile(r"[0-9a-f]{32}")


def pool_prefix(target: BackupTarget, env: Environment) -> str:
    """Worked out from the target and the environment, never read from a manifest (which could name any key)."""
    return "/".join(p for p in (target.prefix, FOLDER, env.folder) if p) + "/"


def pooled(summary: dict) -> bool:
    return summary.get("layout") == LAYOUT


def blob_key(pool: str, sha256: object) -> str:
    """The key of the blob holding content `sha256`; a value that is no SHA-256 was not written by this tool."""
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise OperationFailed(
            f"a manifest names an object by {str(sha256)[:80]!r}, which is no SHA-256: the manifest was damaged "
            "or not written by this tool; nothing was changed"
        )
    return f"{pool}{sha256[:2]}/{sha256}"


def digest_of(pool: str, key: str) -> str | None:
    """The SHA-256 a pool key names, or None for a key that is no blob of ours."""
    sha256 = key[len(pool) :].rpartition("/")[2]
    return sha256 if SHA256.fullmatch(sha256) and key == f"{pool}{sha256[:2]}/{sha256}" else None


def short(sha256: str) -> int:
    """60 bits of a digest: a set of 100,000 of them is 0.8 MB as sorted 8-byte integers."""
    return int(sha256[:15], 16)


ANY = -1  # the check of a blob known by its digest alone: whatever size and MD5 are asked, it holds them


def check_of(size: int, md5: int) -> int:
    """What a listing says of a blob's bytes, in one integer: its size and `short` MD5 mixed where its ETag
    is one (an odd multiplier keeps distinct sizes distinct), else -2 - its size (a multipart blob's size
    is all a listing tells)."""
    return (md5 ^ (size * 0x9E3779B97F4A7C15)) & ((1 << 62) - 1) if md5 >= 0 else -2 - size


class Blobs:
    """The digests of a set of blobs, as 60-bit prefixes in a sorted array: membership in 8 bytes a blob,
    and 8 more for what the listing says of its bytes (`check_of`): 16 bytes a blob, where a column
    each for size and MD5 made 24.

    A false "present" needs two digests that agree in 60 bits (one in 10^18 for a pair): the
    object would be kept by reference to a blob of other bytes, which verify and the drill's
    re-hash name."""

    def __init__(self, blobs: Iterable[str | tuple[str, int, str | None]] = ()) -> None:
        self._sorted, self._checks = array("q"), array("q")
        for blob in blobs:
            if isinstance(blob, str):
                self._sorted.append(short(blob))
                self._checks.append(ANY)
                continue
            sha256, size, md5 = blob
            self._sorted.append(short(sha256))
            self._checks.append(check_of(size, short(md5) if md5 and MD5.fullmatch(md5) else -1))
        # A pool's listing comes in S3's key order, which is the digests' order: sorted again only if not.
        if any(self._sorted[i] > self._sorted[i + 1] for i in range(len(self._sorted) - 1)):
            order = sorted(range(len(self._sorted)), key=self._sorted.__getitem__)
            self._sorted, self._checks = (
                array("q", (column[i] for i in order)) for column in (self._sorted, self._checks)
            )

    def _at(self, sha256: object) -> int | None:
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            return None
        return self._index(short(sha256))

    def _index(self, wanted: int) -> int | None:
        at = bisect.bisect_left(self._sorted, wanted)
        return at if at < len(self._sorted) and self._sorted[at] == wanted else None

    def __contains__(self, sha256: object) -> bool:
        return self._at(sha256) is not None

    def holds(self, sha256: object, size: object, md5: object) -> bool:
        """The blob is there with `size` bytes whose MD5 is `md5`, as far as the listing tells (its ETag is
        the MD5 of a blob uploaded whole): a blob that rotted, or a manifest naming another object's blob,
        is read again from the source rather than named by every backup after."""
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            return False
        listed_md5 = short(md5) if isinstance(md5, str) and MD5.fullmatch(md5) else -2
        return self.holds_short(short(sha256), size if isinstance(size, int) else -2, listed_md5)

    def holds_short(self, wanted: int, size: int, md5: int) -> bool:
        """`holds` for a digest and an MD5 in their `short` forms (-2: none known)."""
        at = self._index(wanted)
        if at is None:
            return False
        check = self._checks[at]
        return check == ANY or check == (check_of(size, md5) if check >= 0 else -2 - size)

    def __len__(self) -> int:
        return len(self._sorted)


class Named:
    """The blobs a run names before the pool's listing is in, to be checked against it: spooled to a file,
    24 bytes each, and read back in pieces (held as arrays, 100,000 of them were 2.7 MB at the run's peak)."""

    CHUNK = 4096  # blobs a piece

    def __init__(self, path: Path) -> None:
        self._file = path.open("w+b")
        self._pending = array("q")
        self._lock = threading.Lock()

    def add(self, sha256: int, size: int, md5: int) -> None:
        """A blob by its `short` digest, the size named and its `short` MD5 (-2: none known)."""
        with self._lock:
            self._pending.extend((sha256, size, md5))
            if len(self._pending) >= 3 * self.CHUNK:
                self._pending.tofile(self._file)
                self._pending = array("q")

    def lost(self, blobs: Blobs) -> int:
        """How many of the blobs named are not in the pool's listing `blobs` as named."""
        with self._lock:
            self._pending.tofile(self._file)
            self._pending = array("q")
            self._file.flush()
            self._file.seek(0)
            lost = 0
            while piece := self._file.read(24 * self.CHUNK):
                values = array("q")
                values.frombytes(piece)
                each = iter(values)
                lost += sum(not blobs.holds_short(*named) for named in zip(each, each, each, strict=True))
            self._file.seek(0, 2)
            return lost

    def close(self) -> None:
        self._file.close()


def listed(s3: S3, target: BackupTarget, pool: str) -> Iterator[tuple[ObjectInfo, str]]:
    """(listing, digest) of every blob in the pool, page by page, nothing held."""
    for info in s3.list_objects(target.bucket, pool):
        sha256 = digest_of(pool, info.key)
        if sha256:
            yield info, sha256


def present(s3: S3, target: BackupTarget, pool: str) -> Blobs:
    """The pool's blobs, but for one whose ETag is no MD5 though it is smaller than anything this tool
    uploads in parts (or Storage tags so): other bytes uploaded in parts, of which the listing would
    vouch for the size alone. Left out, it is written again from the source."""
    from ops.s3.objects import RECORD_MD5_FROM

    return Blobs(
        (sha256, info.size, info.md5)
        for info, sha256 in listed(s3, target, pool)
        if info.md5 is not None or info.size >= RECORD_MD5_FROM
    )


class Listing:
    """The pool's blobs, listed on a thread of its own from the moment this is made; `result` waits for it."""

    def __init__(self, s3: S3, target: BackupTarget, pool: str) -> None:
        self._blobs: Blobs | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._list, args=(s3, target, pool), name="pool-listing", daemon=True)
        self._thread.start()

    def _list(self, s3: S3, target: BackupTarget, pool: str) -> None:
        try:
            self._blobs = present(s3, target, pool)
        except BaseException as error:  # noqa: BLE001 (raised where the listing is waited for)
            self._error = error

    def result(self) -> Blobs:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._blobs if self._blobs is not None else Blobs()


def sweep(s3: S3, target: BackupTarget, pool: str, referenced: set[int]) -> int:
    """Remove each blob whose digest no sealed manifest names (`referenced`: their `short` forms); how many went."""
    doomed: list[str] = []
    removed = 0
    for info, sha256 in listed(s3, target, pool):
        if short(sha256) not in referenced:
            doomed.append(info.key)
        if len(doomed) == 1000:
            s3.delete_objects(target.bucket, doomed)
            removed, doomed = removed + len(doomed), []
    if doomed:
        s3.delete_objects(target.bucket, doomed)
    return removed + len(doomed)
