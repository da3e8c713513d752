"""The manifest of a backup, written and read one object at a time.

Format 2 is one JSON document (any JSON reader takes it whole) laid out to be streamed too:

    {"format": 2, "time": ..., "sizes": {"avatars": {"objects": 2, "bytes": 9}}, ..., "buckets": {
    "avatars": {"objects": 2, "bytes": 9, "manifest": {
    "a.png": {"path": "avatars/a.png", "size": 4, ...},
    "b.png": {"path": "avatars/b.png", "size": 5, ...}
    }}
    }}

Line 1 holds everything but the objects; each bucket opens on a line of its own and each
object is one line (json.dumps escapes every newline a key may hold). So the sizes of a
backup cost one line, and verify or the next backup hold one object at a time, not 100,000.
Manifests written before format 2 are read whole.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ops.errors import OperationFailed, UserError, first_line

FILE = "_backup_metadata.json"
FORMAT = 2
OPENS_BUCKET = '"manifest": {'
KEY = json.JSONDecoder()  # reads the first JSON value of a line: an object's key


def _entry_line(line: str) -> tuple[str, dict]:
    ((key, entry),) = json.loads("{" + line.rstrip().rstrip(",") + "}").items()
    return key, entry


def parse_head(line: str) -> dict | None:
    """Line 1 of a format-2 manifest, as the manifest without its objects; None for older manifests."""
    if not line.startswith('{"format": 2,') or not line.rstrip().endswith('"buckets": {'):
        return None
    return json.loads(line.rstrip() + "}}")


def path_of(backup: Path) -> Path:
    path = backup / FILE
    if not path.is_file():
        raise UserError(f"{backup} is not a complete backup: it has no {FILE}")
    return path


def summary(backup: Path) -> dict:
    """Everything but the objects (for older manifests: the whole manifest)."""
    with path_of(backup).open(encoding="utf-8") as source:
        head = parse_head(source.readline())
    return head if head is not None else json.loads(path_of(backup).read_text(encoding="utf-8"))


def objects(backup: Path) -> Iterator[tuple[str, str, dict]]:
    """(bucket, key, entry) of every object, one at a time."""
    with path_of(backup).open(encoding="utf-8") as source:
        if parse_head(source.readline()) is None:
            whole = json.loads(path_of(backup).read_text(encoding="utf-8"))
            for bucket, data in whole.get("buckets", {}).items():
                for key, entry in data.get("manifest", {}).items():
                    yield bucket, key, entry
            return
        bucket = ""
        for line in source:
            if line.rstrip().endswith(OPENS_BUCKET):
                ((bucket, _),) = json.loads("{" + line.rstrip() + "}}}").items()
            elif line.startswith('"'):
                key, entry = _entry_line(line)
                yield bucket, key, entry


LINE_BITS = 26  # an object's line number within its bucket (67 million a bucket)
HASH_MASK = (1 << 38) - 1  # the rest of 64 bits: 38 of the key's hash


class Index:
    """Where each object's line is in a manifest: its entry is read when asked for, so an index of
    100,000 objects holds 16 bytes per object: its key's hash and line number packed in one sorted
    integer, and each line's offset in file order. Sorting one array of integers holds half of what
    sorting positions by hash did (about 4 MB for 100,000 objects, for a moment)."""

    def __init__(self, backup: Path | None) -> None:
        self._offsets: dict[str, tuple[array[int], array[int]]] = {}
        self._whole: dict[str, dict[str, dict]] | None = None
        self._source: IO[bytes] | None = None
        self._lock = threading.Lock()
        if backup is None:
            return
        self._source = path_of(backup).open("rb")
        try:
            first = self._source.readline()
            if parse_head(first.decode("utf-8")) is None:
                self.close()
                whole = json.loads(path_of(backup).read_text(encoding="utf-8"))
                self._whole = {b: data.get("manifest", {}) for b, data in whole.get("buckets", {}).items()}
                return
            self._offsets = self._indexed(self._source, len(first), backup)
        except (ValueError, AttributeError) as error:  # not UTF-8, not JSON, not a manifest: written by no run of ours
            self.close()
            raise OperationFailed(
                f"{path_of(backup)} cannot be read as a manifest ({first_line(error)}): it was damaged or "
                "not written by this tool; nothing was changed"
            ) from None

    @staticmethod
    def _indexed(source: IO[bytes], offset: int, backup: Path) -> dict[str, tuple[array[int], array[int]]]:
        found: dict[str, tuple[array[int], array[int]]] = {}
        packed, offsets = array("Q"), array("q")
        for raw in source:
            line = raw.decode("utf-8")
            if line.rstrip().endswith(OPENS_BUCKET):
                ((name, _),) = json.loads("{" + line.rstrip() + "}}}").items()
                packed, offsets = found.setdefault(name, (array("Q"), array("q")))
            elif line.startswith('"'):
                if len(offsets) >> LINE_BITS:
                    raise UserError(f"{backup}: more than {1 << LINE_BITS:,} objects in one bucket")
                # Only the key is read, not the entry.
                packed.append((hash(KEY.raw_decode(line)[0]) & HASH_MASK) << LINE_BITS | len(offsets))
                offsets.append(offset)
            offset += len(raw)
        return {name: (array("Q", sorted(packed)), offsets) for name, (packed, offsets) in found.items()}

    def _candidates(self, bucket: str, key: str) -> Iterator[int]:
        """The offsets of the lines whose key has `key`'s hash (one, but for a rare collision of 38 bits)."""
        packed, offsets = self._offsets.get(bucket, (array("Q"), array("q")))
        wanted = (hash(key) & HASH_MASK) << LINE_BITS
        at = bisect.bisect_left(packed, wanted)
        while at < len(packed) and packed[at] >> LINE_BITS == wanted >> LINE_BITS:
            yield offsets[packed[at] & ((1 << LINE_BITS) - 1)]
            at += 1

    def get(self, bucket: str, key: str) -> tuple[dict, str] | None:
        """The object's entry, and its line as written ('' for an older manifest)."""
        if self._whole is not None:
            entry = self._whole.get(bucket, {}).get(key)
            return (entry, "") if entry is not None else None
        source = self._source
        if source is None:
            return None
        for offset in self._candidates(bucket, key):
            with self._lock:
                source.seek(offset)
                line = source.readline().decode("utf-8")
            found, entry = _entry_line(line)
            if found == key:
                return entry, line
        return None

    def close(self) -> None:
        if self._source:
            self._source.close()
            self._source = None


class Writer:
    """The entries of a backup being made, spooled one line each into a hidden file per bucket (from
    any thread, in any order), then written out as the manifest when the backup is sealed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sizes: dict[str, list[int]] = {}  # bucket -> [objects, bytes]
        self._spools: dict[str, IO[str]] = {}
        self._lock = threading.Lock()

    def bucket(self, bucket: str) -> None:
        """A bucket of the backup, listed even when it holds nothing."""
        with self._lock:
            if bucket not in self._spools:
                path = self.folder / f".manifest-{len(self._spools)}.jsonl"
                self._spools[bucket] = path.open("w+", encoding="utf-8")
                self.sizes[bucket] = [0, 0]

    def add(self, bucket: str, key: str, entry: dict[str, Any]) -> None:
        line = json.dumps(key, ensure_ascii=False) + ": " + json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._spools[bucket].write(line)
            self.sizes[bucket][0] += 1
            self.sizes[bucket][1] += entry["size"]

    def add_line(self, bucket: str, line: str, size: int) -> None:
        """An entry as an earlier manifest wrote it (an object unchanged since): copied, not encoded again."""
        with self._lock:
            self._spools[bucket].write(line.rstrip().rstrip(",") + "\n")
            self.sizes[bucket][0] += 1
            self.sizes[bucket][1] += size

    @property
    def objects(self) -> int:
        return sum(count for count, _ in self.sizes.values())

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.sizes.values())

    def write(self, fields: dict[str, Any]) -> None:
        """The manifest (0600, never over an existing one), from `fields` and the entries spooled."""
        sizes = {bucket: {"objects": count, "bytes": size} for bucket, (count, size) in self.sizes.items()}
        head = json.dumps({"format": FORMAT, **fields, "sizes": sizes}, ensure_ascii=False)
        handle = os.open(self.folder / FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(head[:-1] + ', "buckets": {\n')
            for number, (bucket, spool) in enumerate(self._spools.items()):
                opening = json.dumps({"objects": sizes[bucket]["objects"], "bytes": sizes[bucket]["bytes"]})
                out.write(json.dumps(bucket, ensure_ascii=False) + ": " + opening[:-1] + ", " + OPENS_BUCKET + "\n")
                spool.seek(0)
                line = spool.readline()
                while line:
                    following = spool.readline()
                    out.write(line if not following else line[:-1] + ",\n")
                    line = following
                out.write("}}" + ("," if number < len(self._spools) - 1 else "") + "\n")
            out.write("}}\n")
        self.discard()

    def discard(self) -> None:
        with self._lock:
            for spool in self._spools.values():
                spool.close()
                Path(spool.name).unlink(missing_ok=True)
