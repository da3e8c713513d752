"""The Lovable sandbox's code: a git remote/branch that is diffed, merged in, and kept up to date.

Never force-pushes. A conflict stops with the list of conflicting files and the merge
aborted, so the repository is left as it was.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ops import git as gitrepo
from ops.config import Config
from ops.errors import OperationFailed, UserError, last_line
from ops.report import Result, Table


@dataclass
class LovableResult(Result):
    remote: str
    branch: str
    commit: str = ""
    files: list[dict] = field(default_factory=list)  # status, path, added, deleted
    merged: bool = False
    pushed: bool = False
    summary: str = ""

    def rows(self) -> Table:
        return Table(
            ["status", "path", "added", "deleted"],
            [[f["status"], f["path"], f["added"], f["deleted"]] for f in self.files],
        )

    def footer(self) -> str:
        return self.summary


class Git:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = gitrepo.run(cwd or self.cwd, *args)
        if check and result.returncode != 0:
            words = [arg for arg in args if not arg.startswith("-")][:3]  # `git fetch lovable main`, not its options
            why = gitrepo.reason(result.stderr, f"exit {result.returncode}")
            raise OperationFailed(f"git {' '.join(words)} failed: {why}")
        return result

    def out(self, *args: str, cwd: Path | None = None) -> str:
        return self(*args, cwd=cwd).stdout.strip()


def settings(config: Config) -> tuple[str, str, list[str], str]:
    lovable = config.lovable
    if not lovable.remote or not lovable.branch:
        raise UserError("configure the Lovable repository: [lovable] remote = NAME_OR_URL, branch = BRANCH")
    return lovable.remote, lovable.branch, lovable.paths, lovable.ours


def fetch(config: Config) -> tuple[Git, str, LovableResult]:
    remote, branch, _, _ = settings(config)
    git = Git(config.supabase_dir.parent)
    git("fetch", "--quiet", remote, branch)
    return git, git.out("rev-parse", "FETCH_HEAD"), LovableResult(remote, branch)


def changed_files(git: Git, base: str, theirs: str, paths: list[str]) -> list[dict]:
    """What Lovable's branch changed since it last met ours (a three-dot diff)."""
    statuses = dict(
        line.split("\t", 1)[::-1]
        for line in git.out("diff", "--name-status", "--no-renames", f"{base}...{theirs}", "--", *paths).splitlines()
    )
    files = []
    for line in git.out("diff", "--numstat", "--no-renames", f"{base}...{theirs}", "--", *paths).splitlines():
        added, deleted, path = line.split("\t", 2)
        files.append({"status": statuses.get(path, "M"), "path": path, "added": added, "deleted": deleted})
    return files


def conflicted(git: Git, cwd: Path | None = None) -> list[str]:
    return git.out("diff", "--name-only", "--diff-filter=U", cwd=cwd).splitlines()


def _why(merge: subprocess.CompletedProcess, files: list[str]) -> str:
    if files:
        return "conflicts in: " + ", ".join(files)
    return "failed: " + gitrepo.reason(merge.stderr, last_line(merge.stdout, f"git exit {merge.returncode}"))


def sync_lovable(config: Config, *, diff_only: bool) -> LovableResult:
    _, _, paths, _ = settings(config)
    git, theirs, result = fetch(config)
    result.commit = theirs
    result.files = changed_files(git, "HEAD", theirs, paths)
    if diff_only:
        result.summary = f"{len(result.files)} file(s) changed on {result.remote}/{result.branch}"
        return result
    if git.out("status", "--porcelain", "--untracked-files=no"):
        raise UserError("the working tree has uncommitted changes: commit or stash them before merging Lovable's")
    merge = git(
        "merge", "--no-ff", "--no-edit", "-m", f"Merge Lovable {result.branch} ({theirs[:12]})", theirs, check=False
    )
    if merge.returncode != 0:
        files = conflicted(git)
        git("merge", "--abort", check=False)
        raise OperationFailed(
            f"merging Lovable's changes {_why(merge, files)}. The merge was aborted; the repository is as it was."
        )
    result.merged = True
    result.summary = f"merged {len(result.files)} changed file(s) from {result.remote}/{result.branch}"
    return result


def update_lovable(config: Config, *, dry_run: bool = False) -> LovableResult:
    """Merge our main into Lovable's branch in a scratch worktree, then push (fast-forward only)."""
    _, _, paths, ours = settings(config)
    git, theirs, result = fetch(config)
    ours_commit = git.out("rev-parse", "--verify", f"{ours}^{{commit}}")
    behind = int(git.out("rev-list", "--count", f"{theirs}..{ours_commit}"))
    result.commit = theirs
    result.files = changed_files(git, theirs, ours_commit, paths)
    if behind == 0:
        result.summary = f"{result.remote}/{result.branch} already has {ours}"
        return result
    if dry_run:
        result.summary = f"would merge {behind} commit(s) of {ours} into {result.remote}/{result.branch}"
        return result
    scratch = Path(tempfile.mkdtemp(prefix="ops-lovable-"))
    try:
        git("worktree", "add", "--quiet", "--detach", str(scratch / "tree"), theirs)
        tree = scratch / "tree"
        merge = git(
            "merge", "--no-edit", "-m", f"Merge {ours} into Lovable {result.branch}", ours_commit, check=False, cwd=tree
        )
        if merge.returncode != 0:
            files = conflicted(git, cwd=tree)
            git("merge", "--abort", check=False, cwd=tree)
            raise OperationFailed(f"merging {ours} into {result.branch} {_why(merge, files)}. Nothing was pushed.")
        git("push", "--quiet", result.remote, f"HEAD:refs/heads/{result.branch}", cwd=tree)
    finally:
        git("worktree", "remove", "--force", str(scratch / "tree"), check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    result.merged = result.pushed = True
    result.summary = f"merged {behind} commit(s) of {ours} into {result.remote}/{result.branch} and pushed"
    return result
