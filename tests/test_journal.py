"""`inv journal`: every writing task leaves one line, however it ends."""

from __future__ import annotations

import json
import signal
import threading

from lib.s3 import fill

from devstack.faultproxy import FaultProxy
from ops import journal


def lines(project) -> list[dict]:
    path = project.root / "ops-journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_writing_tasks_are_journaled_with_their_outcome(project):
    ok = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert ok.code == 0, ok.err
    dry = project.run("sync-data", "--from", "prod", "--to", "preprod", "--dry-run")
    refused = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "profiles")
    assert (dry.code, refused.code) == (0, 2)
    assert project.run("envs").code == 0  # reading tasks leave no line
    first, second, third = lines(project)
    assert first["task"] == "sync-data" and first["exit_code"] == 0 and first["envs"] == ["prod", "preprod"]
    assert first["refs"] == {"prod": "qfdztdgublwlmewobxmx", "preprod": "jtzcrirqflfnagceendt"}
    assert first["flags"]["tables"] == ["plans"] and first["produced"][0].startswith(str(project.root / "tmp"))
    assert "synced 1 tables" in first["outcome"] and first["user"] and first["host"] and first["seconds"] > 0
    assert second["dry_run"] is True and third["exit_code"] == 2 and "user data" in third["outcome"]
    text = (project.root / "ops-journal.jsonl").read_text()
    assert not [s for s in project.known_secrets() if s in text]


def test_journal_task_filters_newest_first(project):
    for tables in ("plans", "features"):
        assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", tables).code == 0
    listed = project.run("journal", "--task", "sync-data", "--env", "preprod", "--since", "1h", "--json")
    assert listed.code == 0, listed.err
    entries = json.loads(listed.out)["entries"]
    assert [e["flags"]["tables"] for e in entries] == [["features"], ["plans"]]
    last = project.run("journal", "--last", "1", "--json")
    assert [e["flags"]["tables"] for e in json.loads(last.out)["entries"]] == [["features"]]
    table = project.run("journal")
    assert table.out.count("| sync-data") == 2
    assert json.loads(project.run("journal", "--env", "sandbox", "--json").out)["entries"] == []


def test_an_interrupted_task_is_journaled_as_such(project, storage):
    fill(storage["prod"].client(), "avatars", 120)  # 0.3 s each on 8 workers: still copying at 3 s
    proxy = FaultProxy(storage["preprod"].port, delay=0.3).start()
    try:
        project.envs["preprod"]["storage_url"] = proxy.url
        process = project.start("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
        threading.Event().wait(3)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        proxy.stop()
    (entry,) = lines(project)
    assert entry["exit_code"] == 130 and "interrupted" in entry["outcome"]


def test_a_journal_that_cannot_be_written_only_warns(project):
    (project.root / "a-folder").mkdir(parents=True)  # a path that names a folder: no file can be written there
    project.extra = "[journal]\npath = a-folder\n"
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert result.code == 0, result.err
    assert "warning: could not write the ops journal" in result.err


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "journal.jsonl"
    body = "x" * 5000

    def write(n: int) -> None:
        for i in range(100):
            journal.append(path, json.dumps({"writer": n, "i": i, "body": body}) + "\n")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parsed = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(parsed) == 400 and {p["body"] for p in parsed} == {body}


def test_a_journal_in_a_folder_not_made_yet_is_written(project):
    project.extra += "\n[journal]\npath = logs/ops/ops-journal.jsonl\n"
    done = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert done.code == 0 and "could not write the ops journal" not in done.err, done.err
    path = project.root / "logs" / "ops" / "ops-journal.jsonl"
    assert json.loads(path.read_text().splitlines()[0])["task"] == "sync-data"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
