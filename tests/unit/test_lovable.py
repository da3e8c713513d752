"""sync-lovable's git failures, in a throwaway repository (no services)."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_failed_fetch_shows_gits_own_reason(tmp_path):
    app = tmp_path / "app"
    (app / "supabase").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(app)], check=True)
    ini = tmp_path / "environments.ini"
    ini.write_text(
        f"[project]\nsupabase_dir = {app / 'supabase'}\n\n[prod]\nref = qfdztdgublwlmewobxmx\n\n"
        "[lovable]\nremote = lovable\nbranch = main\npaths = src\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", REPO, "sync-lovable", "--diff-only"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPS_ENVIRONMENTS": str(ini)},
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert "'lovable' does not appear to be a git repository" in result.stderr, result.stderr
