"""Migrations: what each environment has applied, what is pending, and pushing with the real CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ops.config import Config, Environment
from ops.db import url as dburl
from ops.db.connection import connect, password_for
from ops.errors import OperationFailed, OpsError, UserError
from ops.invocation import program
from ops.platform import supabase_cli
from ops.platform.supabase_cli import cli_workdir
from ops.report import Result, Table, progress, table
from ops.safety import confirm_write

MIGRATION_NAME = re.compile(r"^(\d+)_(.+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str


def local_migrations(config: Config) -> list[Migration]:
    folder = config.supabase_dir / "migrations"
    if not folder.is_dir():
        return []
    migrations = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise UserError(
                f"bad migration file name: {path} (must be <digits>_<name>.sql, e.g. 20250101120000_add_plans.sql)"
            )
        migrations.append(Migration(match[1], match[2]))
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise UserError(f"two migration files share version(s) {', '.join(duplicates)}: rename one")
    return sorted(migrations, key=lambda m: int(m.version))


@dataclass
class RemoteState:
    env: str
    applied: dict[str, str] = field(default_factory=dict)  # version -> name
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


def remote_state(env: Environment, *, timeout: int = 15) -> RemoteState:
    with connect(env, autocommit=True, application="ops migrations", timeout=timeout) as conn:
        exists = conn.execute("SELECT to_regclass('supabase_migrations.schema_migrations')").fetchall()[0][0]
        if exists is None:
            return RemoteState(env.name)
        rows = conn.execute("SELECT version, coalesce(name, '') FROM supabase_migrations.schema_migrations").fetchall()
    return RemoteState(env.name, dict(rows))


def reachable_state(env: Environment) -> RemoteState:
    """Like remote_state, but an environment that cannot be read is reported, not raised."""
    try:
        return remote_state(env, timeout=5)
    except OpsError as error:
        return RemoteState(env.name, error=str(error))


@dataclass
class EnvPlan:
    env: Environment
    pending: list[Migration]
    remote_only: list[str]


def plan_env(local: list[Migration], state: RemoteState, env: Environment) -> EnvPlan:
    versions = {m.version for m in local}
    return EnvPlan(
        env, [m for m in local if m.version not in state.applied], sorted(v for v in state.applied if v not in versions)
    )


def pending_table(plans: list[EnvPlan]) -> str:
    rows = [[p.env.name, m.version, m.name] for p in plans for m in p.pending]
    return table(rows or [["(none)", "", ""]], ["env", "pending version", "name"])


# ---------------------------------------------------------------- push


@dataclass
class PushRow:
    env: str
    status: str  # done | up to date | failed | not run | would apply
    applied: int = 0
    pending: int = 0
    detail: str = ""


@dataclass
class PushResult(Result):
    envs: list[PushRow]
    dry_run: bool

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.envs)

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "envs": [asdict(r) for r in self.envs]}

    def rows(self) -> Table:
        return Table(
            ["env", "status", "applied", "pending", "detail"],
            [[r.env, r.status, r.applied, r.pending, r.detail] for r in self.envs],
        )

    def failure(self) -> OpsError | None:
        if self.failed:
            return OperationFailed("a migration push failed: fix the migration and re-run (applied ones are tracked)")
        return None


def push_migrations(
    config: Config,
    *,
    env: str | None,
    dry_run: bool = False,
    yes: bool = False,
    include_all: bool = False,
    skip_preprod_check: bool = False,
    show: Callable[[str], None] = print,
) -> PushResult:
    """Push pending migrations; `show` receives the pending table before anything changes."""
    envs = config.envs_named(env, default=[config.workflows.prod], all_of=config.migrations.all_order)
    for each in envs:  # `db push` needs a whole session: refuse a transaction pooler before connecting
        dburl.session_params(each, "supabase db push")
    local = local_migrations(config)
    states = {e.name: remote_state(e) for e in envs}
    plans = [plan_env(local, states[e.name], e) for e in envs]
    drift = [p for p in plans if p.remote_only]
    if drift:
        lines = [f"{p.env.name}: {', '.join(p.remote_only)}" for p in drift]
        raise UserError(
            "migrations applied remotely but missing locally:\n  "
            + "\n  ".join(lines)
            + "\nFetch them (git pull) or mark them reverted: supabase migration repair --status reverted VERSION "
            "--db-url URL. Nothing was pushed."
        )
    if not include_all:
        for plan in plans:
            newest = max((int(v) for v in states[plan.env.name].applied), default=0)
            older = [m.version for m in plan.pending if int(m.version) < newest]
            if older:
                raise UserError(
                    f"{plan.env.name}: pending migration(s) {', '.join(older)} are older than the newest applied "
                    "one; pass --include-all to apply them out of order"
                )
    show(pending_table(plans))
    for index, plan in enumerate(plans):
        _check_tested_first(
            config, plan, states, pushed_before=[p.env.name for p in plans[:index]], skip=skip_preprod_check
        )
    if dry_run:
        return PushResult(
            [PushRow(p.env.name, "would apply" if p.pending else "up to date", pending=len(p.pending)) for p in plans],
            True,
        )
    for plan in plans:
        if plan.pending:
            dburl.for_cli(plan.env)  # the CLI is given the password: refused here, before anything is pushed
            confirm_write(plan.env, yes=yes, action=f"apply {len(plan.pending)} migration(s)")
    rows: list[PushRow] = []
    for index, plan in enumerate(plans):
        if not plan.pending:
            rows.append(PushRow(plan.env.name, "up to date"))
            continue
        progress(f"pushing {len(plan.pending)} migration(s) to {plan.env.name}")
        detail = _push(config, plan.env, include_all)
        after = plan_env(local, remote_state(plan.env), plan.env)
        applied = len(plan.pending) - len(after.pending)
        if detail is None and not after.pending:
            rows.append(PushRow(plan.env.name, "done", applied=applied))
            continue
        rows.append(
            PushRow(
                plan.env.name,
                "failed",
                applied=applied,
                pending=len(after.pending),
                detail=detail or "migrations still pending after push",
            )
        )
        rows += [PushRow(p.env.name, "not run", pending=len(p.pending)) for p in plans[index + 1 :]]
        break
    return PushResult(rows, False)


def _check_tested_first(
    config: Config, plan: EnvPlan, states: dict[str, RemoteState], *, pushed_before: list[str], skip: bool
) -> None:
    """Critical rule 2: a migration reaches prod only after preprod has it (`[migrations] test_first`)."""
    staging = config.migrations.test_first.get(plan.env.name)
    if skip or not staging or not plan.pending or staging in pushed_before:
        return  # in `all`, the staging environment is pushed first in this same run
    _, untested = not_yet_tested(config, plan.env, [m.version for m in plan.pending], states.get(staging))
    if untested:
        raise UserError(
            f"{staging} first: {', '.join(untested)} not applied to {staging} yet. Push there and test "
            f"({program()} push-migrations --env {staging}), or pass --skip-preprod-check"
        )


def not_yet_tested(
    config: Config, env: Environment, versions: list[str], staged: RemoteState | None = None
) -> tuple[str, list[str]]:
    """Critical rule 2 (`[migrations] test_first`): the `versions` that may not reach `env` yet because
    its staging environment lacks them, and that environment's name ("" when `env` has none)."""
    staging = config.migrations.test_first.get(env.name)
    if not staging:
        return "", []
    state = staged or remote_state(config.env(staging))
    return staging, [version for version in versions if version not in state.applied]


def _push(config: Config, env: Environment, include_all: bool) -> str | None:
    """Run `supabase db push`; None when it succeeded, else the CLI's last words."""
    args = ["db", "push", "--db-url", dburl.for_cli(env), "--yes"]
    if include_all:
        args.append("--include-all")
    result = supabase_cli.run(args, workdir=cli_workdir(config), db_password=password_for(env))
    if result.ok:
        return None
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or f"supabase db push exited {result.returncode}"


# ---------------------------------------------------------------- status


@dataclass
class StatusResult(Result):
    envs: list[str]
    versions: list[dict]
    unreachable: dict[str, str]

    def to_dict(self) -> dict:
        return {"envs": self.envs, "rows": self.versions, "unreachable": self.unreachable}

    def rows(self) -> Table:
        headers = ["version", "name", *self.envs]
        return Table(headers, [[row.get(h, "") for h in headers] for row in self.versions])

    def footer(self) -> str:
        return "\n".join(f"{env}: unreachable ({why})" for env, why in self.unreachable.items())

    def failure(self) -> OpsError | None:
        if not self.unreachable:
            return None
        return OperationFailed(f"could not read {', '.join(self.unreachable)}: their migrations are unknown")


def migration_status(config: Config, envs: list[str] | None) -> StatusResult:
    chosen = config.envs_named(envs, default=config.default_envs(), having=lambda e: bool(e.db_url), needs="a db_url")
    names = [e.name for e in chosen]
    local = local_migrations(config)
    with ThreadPoolExecutor(max_workers=len(chosen) or 1) as pool:
        states = list(pool.map(reachable_state, chosen))
    rows = []
    for migration in local:
        row = {"version": migration.version, "name": migration.name}
        for state in states:
            row[state.env] = (
                "unreachable" if not state.reachable else "applied" if migration.version in state.applied else "pending"
            )
        rows.append(row)
    local_versions = {m.version for m in local}
    remote_only = sorted({v for s in states for v in s.applied if v not in local_versions}, key=int)
    for version in remote_only:
        row = {
            "version": version,
            "name": next(s.applied[version] for s in states if version in s.applied) + " (remote only)",
        }
        for state in states:
            row[state.env] = (
                "unreachable" if not state.reachable else "remote only" if version in state.applied else "-"
            )
        rows.append(row)
    return StatusResult(names, rows, {s.env: s.error for s in states if s.error is not None})
