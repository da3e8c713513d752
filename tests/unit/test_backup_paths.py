"""Object key -> backup path: one-to-one, total, and safe to read back (no services)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ops.backup.paths import HASHED_DIR, member, object_paths, paths_in_order
from ops.errors import UserError

KEYS = ["a/../b", "a/%2E%2E/b", "a//b", "a/%00/b", "a", "a/b", "x/./y", "100%/d", "100%25/d", "z/" + "\u6f22" * 90]


def in_order(bucket: str, keys: list[str]) -> dict[str, str]:
    listed = sorted((key.encode("utf-8", "surrogatepass"), key) for key in keys)
    return dict(paths_in_order(bucket, listed, lambda key: key))


@pytest.mark.parametrize("made", [object_paths, in_order])
def test_distinct_keys_never_share_a_path_and_no_file_is_a_folder(made):
    paths = made("bucket", KEYS)
    assert len(set(paths.values())) == len(KEYS)
    files = set(paths.values())
    folders = {"/".join(p.split("/")[:n]) for p in files for n in range(1, p.count("/") + 1)}
    assert not files & folders
    assert all(".." not in p.split("/") and "." not in p.split("/") and "" not in p.split("/") for p in files)


@pytest.mark.parametrize("seed", range(40))
def test_paths_given_as_the_listing_goes_are_those_of_the_whole_listing(seed):
    """Keys made of the characters that sort around "/" (".", "-", "0", "%"), nested and beside each other."""
    rng = random.Random(seed)
    pieces = ["a", "b", ".", "-", "0", "%", "é", "", "..", "a.png"]
    keys = {"/".join(rng.choice(pieces) + rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(60)}
    keys |= {key + "/" + "x" * 300 for key in list(keys)[:3]}  # a longer folder: hashed, so no folder of its own
    assert in_order("bucket", list(keys)) == object_paths("bucket", keys)


def test_paths_in_order_settles_most_keys_at_the_next_one():
    read = []

    def listed():
        for n in range(1000):
            key = f"users/{n:04d}/avatar.png"
            read.append(key)
            yield key.encode(), key

    given = 0
    for n, (key, path) in enumerate(paths_in_order("b", listed(), lambda key: key)):
        assert key == f"users/{n:04d}/avatar.png" and path == "b/" + key
        assert len(read) <= n + 2  # the listing is read at most one key ahead
        given += 1
    assert given == len(read) == 1000  # every key listed is given back, once


def test_file_and_folder_of_the_same_name_and_long_names_are_hashed():
    paths = object_paths("bucket", KEYS)
    assert paths["a"].startswith(HASHED_DIR + "/bucket/") and paths["a/b"] == "bucket/a/b"
    assert paths["z/" + "\u6f22" * 90].startswith(HASHED_DIR)
    assert paths["a/../b"] == "bucket/a/%2E%2E/b" and paths["a/%2E%2E/b"] == "bucket/a/%252E%252E/b"


@pytest.mark.parametrize(
    "relative", ["/etc/passwd", "../x", "a/../../x", ""], ids=["absolute", "up", "deep-up", "empty"]
)
def test_manifest_paths_outside_the_folder_are_refused(tmp_path, relative):
    with pytest.raises(UserError):
        member(tmp_path, relative, "manifest")


def test_symlinks_are_not_followed(tmp_path):
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(UserError, match="symlink"):
        member(tmp_path, "link/passwd", "manifest")
    assert member(tmp_path, "bucket/key", "manifest") == Path(tmp_path, "bucket", "key")
