"""A backup manifest is one JSON document that also streams: one line of summary, one line per object."""

from __future__ import annotations

import json
import threading

import pytest

from ops.backup import manifest
from ops.errors import OperationFailed, UserError

KEYS = ["plain.png", 'quote"and\\back', "new\nline", "é/漢字", '"manifest": {', "ends-with }"]


def written(folder):
    writer = manifest.Writer(folder)
    for bucket in ("avatars", "empty", "docs"):
        writer.bucket(bucket)

    def add(bucket: str, keys: list[str]) -> None:
        for key in keys:
            writer.add(bucket, key, {"path": f"{bucket}/{len(key)}", "size": len(key), "etag": "e"})

    threads = [threading.Thread(target=add, args=("avatars", KEYS)), threading.Thread(target=add, args=("docs", ["d"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.write({"env": "prod", "artifacts": {"x.sql": "abc"}})
    return folder


def test_the_manifest_is_json_and_streams_the_same_objects(tmp_path):
    backup = written(tmp_path)
    whole = json.loads((backup / manifest.FILE).read_text())
    assert set(whole["buckets"]["avatars"]["manifest"]) == set(KEYS)
    assert whole["buckets"]["empty"] == {"objects": 0, "bytes": 0, "manifest": {}}
    streamed = {(bucket, key): entry for bucket, key, entry in manifest.objects(backup)}
    assert streamed == {(b, k): e for b, data in whole["buckets"].items() for k, e in data["manifest"].items()}
    assert not list(tmp_path.glob(".manifest-*")), "the spooled entries are removed once written"


def test_the_summary_is_one_line_and_the_index_reads_one_entry(tmp_path):
    backup = written(tmp_path)
    summary = manifest.summary(backup)
    assert summary["sizes"]["avatars"] == {"objects": len(KEYS), "bytes": sum(len(k) for k in KEYS)}
    assert summary["artifacts"] == {"x.sql": "abc"} and "buckets" in summary and not summary["buckets"]
    index = manifest.Index(backup)
    entry, line = index.get("avatars", "new\nline")
    assert entry == {"path": "avatars/8", "size": 8, "etag": "e"} and line.startswith('"new\\nline": {')
    assert index.get("docs", "d")[0]["size"] == 1
    assert index.get("avatars", "absent") is None and index.get("nowhere", "d") is None
    index.close()


def test_keys_whose_hashes_agree_in_the_index_each_find_their_own_entry(tmp_path, monkeypatch):
    # 38 bits of 100,000 keys' hashes agree for some pair about once in 50 backups: every key must still be found.
    monkeypatch.setattr(manifest, "HASH_MASK", 0)  # every key collides with every other
    backup = written(tmp_path)
    index = manifest.Index(backup)
    for bucket, key, entry in manifest.objects(backup):
        assert index.get(bucket, key)[0] == entry
    assert index.get("avatars", "absent") is None
    index.close()


def test_an_older_manifest_is_read_whole(tmp_path):
    old = {"env": "prod", "buckets": {"avatars": {"objects": 1, "bytes": 3, "manifest": {"a": {"size": 3}}}}}
    (tmp_path / manifest.FILE).write_text(json.dumps(old, indent=2))
    assert manifest.summary(tmp_path) == old
    assert list(manifest.objects(tmp_path)) == [("avatars", "a", {"size": 3})]
    assert manifest.Index(tmp_path).get("avatars", "a") == ({"size": 3}, "")


@pytest.mark.parametrize(
    ("spoil", "what"),
    [
        (lambda text: text.replace(b'"plain.png"', b'"plain\xff.png"'), "not UTF-8"),
        (lambda text: text.replace(b'"plain.png": {', b'"plain\\q.png": {'), "no JSON string"),
        (lambda text: text.replace(b'"env": "prod"', b'"env": "pr\xffod"', 1), "a head not UTF-8"),
        (lambda text: b"{" + text.split(b"\n", 1)[1], "no head, no JSON"),
    ],
)
def test_a_damaged_previous_manifest_is_named_not_a_traceback(tmp_path, spoil, what):
    # The previous manifest is read from the target, where anyone with its keys may have written it.
    backup = written(tmp_path)
    path = backup / manifest.FILE
    path.write_bytes(spoil(path.read_bytes()))
    with pytest.raises((UserError, OperationFailed)) as refused:
        manifest.Index(backup).close()
    assert "\n" not in str(refused.value) and str(path) in str(refused.value), what
