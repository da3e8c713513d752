"""Edge functions: which exist, which changed since a git ref, and deploying them exactly.

Deploying: one bulk CLI call deploys everything in parallel (`--jobs`). CLI 2.117.0 then
exits 1 without naming what failed, so only after a failed bulk call do we compare the
project's function versions with those from before and redeploy the few that did not
move, one CLI call each: fast when all goes well, exact when it does not.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ops import git as gitrepo
from ops import invocation
from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, UserError, last_line
from ops.platform import supabase_cli
from ops.platform.supabase_cli import cli_workdir
from ops.report import Meter, Result, Table, progress
from ops.safety import confirm_write
from ops.spelling import choose

FUNCTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RELATIVE_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\bexport\s*\*\s*from\s*)["'](\.{1,2}/[^"']+)["']""")


def functions_dir(config: Config) -> Path:
    return config.supabase_dir / "functions"


def local_functions(config: Config) -> list[str]:
    """Subfolders named like a function that hold an index.ts (the CLI's own rule)."""
    folder = functions_dir(config)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and FUNCTION_NAME.match(p.name) and (p / "index.ts").is_file()
    )


def imported_files(entry: Path, root: Path) -> set[Path]:
    """Every file reachable from `entry` through relative imports, staying under `root`."""
    seen: set[Path] = set()
    todo = [entry.resolve()]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        for target in RELATIVE_IMPORT.findall(text):
            resolved = (path.parent / target).resolve()
            if resolved.is_relative_to(root.resolve()):
                todo.append(resolved)
    return seen


def changed_files(config: Config, since: str) -> set[Path]:
    """Files under supabase/functions changed since a git ref, including uncommitted and new ones."""
    folder = functions_dir(config)

    def git(*args: str, cwd: Path = config.supabase_dir.parent) -> list[str]:
        result = gitrepo.run(cwd, *args)
        if result.returncode != 0:
            last = last_line(result.stderr, "not a git repository?")
            raise UserError(f"--changed-since {since}: git {args[0]} failed: {last}")
        return [line for line in result.stdout.splitlines() if line]

    try:
        git("rev-parse", "--verify", "--quiet", f"{since}^{{commit}}")
    except UserError:
        raise UserError(f"--changed-since: '{since}' is not a commit git knows") from None
    top = Path(git("rev-parse", "--show-toplevel")[0])
    names = git("diff", "--name-only", since, "--", str(folder), cwd=top)
    names += git("ls-files", "--others", "--exclude-standard", "--", str(folder), cwd=top)
    return {(top / name).resolve() for name in names}


def changed_functions(config: Config, since: str) -> list[str]:
    changed = changed_files(config, since)
    folder = functions_dir(config).resolve()
    affected = []
    for name in local_functions(config):
        own = folder / name
        reach = imported_files(own / "index.ts", folder)
        if any(path.is_relative_to(own) for path in changed) or reach & changed:
            affected.append(name)
    return affected


def select_functions(config: Config, only: list[str] | None, changed_since: str | None) -> list[str]:
    available = local_functions(config)
    if only and changed_since:
        raise UserError("use either --only or --changed-since, not both")
    if only:
        return choose(
            only,
            available,
            lambda unknown: (
                f"no such function(s): {', '.join(unknown)} (functions are folders of {functions_dir(config)} "
                "with an index.ts)"
            ),
        )
    if changed_since:
        return changed_functions(config, changed_since)
    return available


# ---------------------------------------------------------------- deploy


@dataclass
class DeployResult(Result):
    env: str
    ref: str
    functions: list[str]
    dry_run: bool = False
    deployed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # failed function -> the CLI's own reason
    rerun: str = ""
    cli_calls: int = 0
    commit: str | None = None  # the code deployed: --at's commit, else HEAD (+ "-dirty" with local changes)

    def rows(self) -> Table:
        if self.dry_run:
            return Table(["function", f"{self.env} ({self.ref})"], [[name, "would deploy"] for name in self.functions])
        return Table(
            ["function", f"{self.env} ({self.ref})"],
            [
                [
                    name,
                    f"failed: {self.reasons.get(name, '')}".rstrip(": ")
                    if name in self.failed
                    else "deployed (retried)"
                    if name in self.retried
                    else "deployed",
                ]
                for name in self.functions
            ],
        )

    @property
    def short_commit(self) -> str:
        if not self.commit:
            return ""
        return self.commit[:12] + ("-dirty" if self.commit.endswith("-dirty") else "")

    def footer(self) -> str:
        at = f" from {self.short_commit}" if self.commit else ""
        return f"{len(self.functions)} function(s){at}" if self.functions else "nothing to deploy"

    def failure(self) -> OpsError | None:
        if not self.failed:
            return None
        why = "".join(f"\n  {name}: {self.reasons[name]}" for name in self.failed if self.reasons.get(name))
        return OperationFailed(
            f"{len(self.failed)} function(s) failed: {', '.join(self.failed)}{why}\nre-run: {self.rerun}"
        )


def deploy_args(names: list[str], ref: str, jobs: int, *, verify_jwt: bool = False) -> list[str]:
    # The functions handle auth themselves (reference card): --no-verify-jwt, unless config.toml asks for JWTs.
    flag = [] if verify_jwt else ["--no-verify-jwt"]
    return ["functions", "deploy", *names, "--project-ref", ref, *flag, "--use-api", "--jobs", str(jobs)]


def jwt_verified(config: Config) -> set[str]:
    """Functions whose `[functions.<name>] verify_jwt = true` in supabase/config.toml overrides the card."""
    import tomllib

    path = config.supabase_dir / "config.toml"
    if not path.is_file():
        return set()
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8")).get("functions") or {}
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    return {name for name, values in settings.items() if isinstance(values, dict) and values.get("verify_jwt") is True}


def remote_versions(config: Config, env: Environment) -> dict[str, int] | None:
    """slug -> version as the project reports them, or None when the list cannot be read.

    A missing or refused access token is exit 2 here, before any deploy: every deploy would fail
    the same way, each after the CLI's own retries.
    """
    listed = supabase_cli.list_functions(config, env)
    if not listed.result.ok and listed.result.token_problem:
        raise UserError(supabase_cli.token_error(listed.result, env.name) + ". Nothing was deployed.")
    return listed.versions


def deploy_functions(
    config: Config,
    *,
    env: str | None,
    only: list[str] | None = None,
    changed_since: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    yes: bool = False,
    at: str | None = None,
    command: invocation.CommandLine | None = None,
) -> DeployResult:
    """Deploy the working tree's functions, or with `at` the functions as they were at that git ref.
    `command` is the command line the re-run hint is made from (in a workflow, the workflow's)."""
    if at is None:
        result = _deploy(config, env=env, only=only, changed_since=changed_since, dry_run=dry_run, jobs=jobs, yes=yes)
        result.commit = working_commit(config)
    else:
        if changed_since:
            raise UserError("--at deploys a past commit's functions: combine it with --only, not --changed-since")
        with tempfile.TemporaryDirectory(prefix="ops-at-") as scratch:
            commit, past = checkout_at(config, at, Path(scratch))
            result = _deploy(past, env=env, only=only, changed_since=None, dry_run=dry_run, jobs=jobs, yes=yes)
        result.commit = commit
    if result.failed:
        line = command or invocation.CommandLine("deploy-functions", {"env": result.env})
        pinned = {"at": result.commit[:12]} if at and result.commit else {}
        result.rerun = line.rerun(drop=("only", "changed_since", "at"), add={"only": result.failed, **pinned})
    return result


def working_commit(config: Config) -> str | None:
    top = config.supabase_dir.parent
    head = gitrepo.out(top, "rev-parse", "HEAD")
    if not head:
        return None
    dirty = gitrepo.out(top, "status", "--porcelain", "--", str(functions_dir(config)))
    return head + ("-dirty" if dirty else "")


def checkout_at(config: Config, ref: str, scratch: Path) -> tuple[str, Config]:
    """The project's supabase folder as it was at `ref`, in a scratch folder (the user's tree and index untouched)."""
    top = Path(gitrepo.out(config.supabase_dir.parent, "rev-parse", "--show-toplevel") or config.supabase_dir.parent)
    commit = gitrepo.out(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not commit:
        raise UserError(f"--at {ref}: not a commit git knows in {top}")
    relative = config.supabase_dir.resolve().relative_to(top.resolve())
    archive = gitrepo.run_bytes(top, "archive", "--format=tar", commit, "--", str(relative))
    if archive.returncode != 0:
        raise UserError(f"--at {ref}: {relative} does not exist at {commit[:12]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(scratch, filter="data")
    progress(f"deploying the functions of {commit[:12]} ({ref})")
    return commit, dataclasses.replace(config, supabase_dir=scratch / relative)


def _deploy(
    config: Config,
    *,
    env: str | None,
    only: list[str] | None,
    changed_since: str | None,
    dry_run: bool,
    jobs: int | None,
    yes: bool,
) -> DeployResult:
    environment = config.env(env or config.workflows.prod)
    if not environment.ref:
        raise UserError(f"environment '{environment.name}' has no ref: add the project ref to its section")
    names = select_functions(config, only, changed_since)
    jobs = config.functions_jobs if jobs is None else jobs
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    result = DeployResult(environment.name, environment.ref, names, dry_run=dry_run)
    if dry_run or not names:
        return result
    plan = f"plan for {environment.name}: deploy {len(names)} function(s)" + "".join(f"\n  + {n}" for n in names)
    confirm_write(environment, yes=yes, action=f"deploy {len(names)} function(s)", plan=plan)
    workdir = cli_workdir(config)
    before = remote_versions(config, environment)
    result.cli_calls += 1
    verified = jwt_verified(config)
    bulk_ok = True
    with Meter("deploying", len(names), "functions") as meter:

        def show(line: str) -> None:
            if line.startswith("Deploying Function:"):
                meter.add()

        for verify in (False, True):  # one bulk call per JWT setting (the CLI's flag applies to all it deploys)
            group = [n for n in names if (n in verified) == verify]
            if group:
                bulk = supabase_cli.run(
                    deploy_args(group, environment.ref, jobs, verify_jwt=verify), workdir=workdir, on_line=show
                )
                result.cli_calls += 1
                bulk_ok = bulk_ok and bulk.ok
    if bulk_ok:
        result.deployed = list(names)
        return result
    # Pin down the failures: what did not get a new version is redeployed one by one.
    try:
        after = remote_versions(config, environment)
    except UserError:  # the token went bad mid-run: pin the failures down one by one all the same
        after = None
    result.cli_calls += 1
    if before is None or after is None:
        suspects = list(names)
    else:
        suspects = [n for n in names if after.get(n, 0) <= before.get(n, 0)]
    result.deployed = [n for n in names if n not in suspects]
    progress(f"bulk deploy failed; retrying {len(suspects)} function(s) one by one to find which")

    def single(name: str) -> tuple[str, supabase_cli.CliResult]:
        args = deploy_args([name], environment.ref, 1, verify_jwt=name in verified)
        return name, supabase_cli.run(args, workdir=workdir)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name, done in pool.map(single, suspects):
            result.cli_calls += 1
            (result.retried if done.ok else result.failed).append(name)
            if not done.ok:
                result.reasons[name] = done.reason
    result.deployed += result.retried
    return result
