"""Routine failures are one line and an exit code: never a Python traceback.

Project.run asserts this for every run of the whole suite; the cases here are the ones most
likely to escape as one: storage that cannot be reached or does not speak S3, an environments
file in another encoding, a reader that closes the pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest
from lib.project import REPO

from devstack.faultproxy import FaultProxy
from devstack.httpserver import LocalHTTPServer

STORAGE_TASKS = {
    "sync-storage": ("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars"),
    "backup-storage": ("backup-storage", "--buckets", "avatars"),
    "restore-storage": ("restore-storage", "--to", "prod", "--buckets", "avatars", "--yes", "--backup"),
}


class NotS3(LocalHTTPServer):
    """A web server at the storage URL (a wrong path, a captive proxy): HTML for every request."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self):
                body = b"<html><body>Welcome to nginx!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

        self.serve(Handler)


@pytest.fixture
def with_backup(project, storage):
    storage["prod"].client().put_object(Bucket="avatars", Key="a.bin", Body=b"a" * 100)
    made = project.run("backup-storage", "--buckets", "avatars", "--json")
    assert made.code == 0
    project.backup_path = json.loads(made.out)["backups"][0]["path"]
    return project


@pytest.mark.parametrize("fault", ["no-such-host", "refused", "500-always", "not-xml"])
def test_storage_faults_are_one_line_in_every_storage_task(with_backup, storage, fault, refused_port):
    project = with_backup
    server = proxy = None
    if fault == "no-such-host":
        url, shown = "http://storage.nowhere.invalid:9000", "name not found"
    elif fault == "refused":
        url, shown = f"http://127.0.0.1:{refused_port()}", "connection refused"
    elif fault == "500-always":
        proxy = FaultProxy(storage["prod"].port, rate=1.0, faults=("500",)).start()
        url, shown = proxy.url, "500"
    else:
        server = NotS3()
        url, shown = server.url, "not an S3 XML document"
    try:
        project.envs["prod"]["storage_url"] = url
        for name, args in STORAGE_TASKS.items():
            result = project.run(*args, *([project.backup_path] if args[-1] == "--backup" else []))
            assert result.code == 1, (name, result.err)
            last = result.err.strip().splitlines()[-1]
            assert last.startswith("error: prod: storage at ") and shown in last, (name, result.err)
        doctor = project.run("doctor", "--env", "prod", "--json")
        assert doctor.code == 1
        check = next(c for c in json.loads(doctor.out)["checks"] if c["check"] == "storage")
        assert not check["ok"] and shown in check["detail"]
    finally:
        if proxy:
            proxy.stop()
        if server:
            server.stop()


@pytest.mark.parametrize("content", [b"# R\xe9glages\n", b"\xef\xbb\xbf"], ids=["latin-1", "bom"])
def test_environments_file_encodings(project, content):
    project.write()
    odd = project.root / "odd.ini"
    data = project.ini.read_bytes()
    odd.write_bytes(content + data if content.startswith(b"\xef") else data + content)
    result = project.run("envs", env={"OPS_ENVIRONMENTS": str(odd)})
    if content.startswith(b"\xef"):
        assert result.code == 0, result.err
    else:
        assert result.code == 2 and "is not UTF-8 text" in result.err


def test_a_reader_that_closes_the_pipe_ends_the_task_quietly(project):
    lines = [
        json.dumps(
            {
                "time": "2026-11-30T10:00:00+00:00",
                "task": "sync-data",
                "envs": ["prod"],
                "exit_code": 0,
                "outcome": "x" * 200,
            }
        )
        for _ in range(2000)
    ]
    (project.root / "ops-journal.jsonl").write_text("\n".join(lines) + "\n")
    project.write()
    environ = {**os.environ, "OPS_ENVIRONMENTS": str(project.ini)}
    for args in ("journal --last 2000", "status --json"):
        # The reader closes its end at once: every write of ours meets a closed pipe.
        script = (
            f"{sys.executable} -m invoke --search-root {REPO} {args} | (exec 0<&-; sleep 3); "
            'echo "exit=${PIPESTATUS[0]}" >&2'
        )
        done = subprocess.run(
            ["bash", "-c", script], cwd=project.root, env=environ, capture_output=True, text=True, timeout=120
        )
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
        assert "exit=141" in done.stderr, done.stderr
