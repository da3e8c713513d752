"""Where each object of a backup lives on disk, and reading paths back from a manifest safely.

The mapping from (bucket, key) to a relative path is one-to-one and total:
- every key segment is escaped reversibly (`%` first, then the segments a file system
  gives a meaning to: empty, `.`, `..`), so two distinct keys never share a file;
- a key that is also the "folder" of another key (`a` beside `a/b`), or whose escaped
  form is longer than the file system allows, lives under a hashed path instead.
The manifest records the path of every key, so restore never has to invert the mapping.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ops.errors import UserError

HASHED_DIR = "_hashed"
NAME_MAX = 255  # bytes per path segment on ext4, xfs, btrfs, apfs
PATH_MAX = 1024  # a conservative limit for the whole relative path
SPECIAL_SEGMENTS = {"": "%00", ".": "%2E", "..": "%2E%2E"}


def escape_segment(segment: str) -> str:
    escaped = segment.replace("%", "%25")
    return SPECIAL_SEGMENTS.get(escaped, escaped)


def hashed_path(bucket: str, key: str) -> str:
    return f"{HASHED_DIR}/{bucket}/{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def plain_path(bucket: str, key: str) -> str | None:
    """The readable path of a key, or None when the file system cannot hold it."""
    segments = [bucket, *(escape_segment(part) for part in key.split("/"))]
    if any(len(s.encode("utf-8", "surrogatepass")) > NAME_MAX for s in segments):
        return None
    path = "/".join(segments)
    return path if len(path.encode("utf-8", "surrogatepass")) <= PATH_MAX else None


def object_paths(bucket: str, keys: Iterable[str]) -> dict[str, str]:
    """Relative paths for every key of a bucket: distinct, and no file is another's folder."""
    plain = {key: plain_path(bucket, key) for key in keys}
    folders: set[str] = set()
    for path in plain.values():
        if path:
            parts = path.split("/")
            folders.update("/".join(parts[:n]) for n in range(2, len(parts)))
    return {key: path if path and path not in folders else hashed_path(bucket, key) for key, path in plain.items()}


def within(folder: Path, relative: str, what: str) -> Path:
    """A path read from a manifest, refused unless it names a place inside `folder` (read, not looked at)."""
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or ".." in pure.parts or "\\" in relative:
        raise UserError(f"{folder}: {what} names a path outside the folder ({relative!r}); the file was edited")
    return folder / relative


def member(folder: Path, relative: str, what: str) -> Path:
    """A path read from a manifest, refused unless it stays inside `folder` with no symlink."""
    within(folder, relative, what)
    pure = PurePosixPath(relative)
    # No "..", no absolute path and no symlink on the way down: the path cannot leave the folder.
    current = str(folder)
    for part in pure.parts:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise UserError(f"{folder}: {what} goes through a symlink ({relative!r}); refusing to follow it")
    return Path(current)
