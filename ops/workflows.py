"""The reference card's common workflows as one command each: steps that stop at the first failure.

Every workflow ends with a summary of every step (done / failed / not run) and, after a
failure, the command that resumes from the failed step (`--resume-at STEP`). Each step can plan
(read-only) and apply. A workflow's plan is its steps' plans, each made as it would be after the
steps before it, marking the steps it could plan only in part (what they read, an earlier step
would change first); a dry run prints it, and a protected target is asked about after it is
shown, before the same steps apply.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.backup import full
from ops.backup.retention import policy_from
from ops.config import Config, Environment
from ops.db import url as dburl
from ops.errors import OperationFailed, OpsError, UserError, first_line
from ops.invocation import CommandLine, program
from ops.platform import functions, migrations
from ops.report import Result, Table, progress, table
from ops.safety import confirm_write, distinct, will_ask
from ops.storage import sync as storage
from ops.sync import data as sync_data
from ops.sync import plan as sync_plan


@dataclass
class Step:
    name: str
    apply: Callable[[], str]  # does it: a one-line account of what it did; raises OpsError on failure
    plan: Callable[[], str] | None = None  # read-only: what it would do, in one line (a workflow with a dry run)


@dataclass
class StepResult:
    step: str
    status: str  # done | planned in part | failed | not run | skipped
    detail: str = ""


class PlannedInPart(OpsError):
    """A dry-run step whose input an earlier step would change first: planned as far as it can be."""


@dataclass
class DryRun:
    """What the earlier steps of a dry run would change, for the steps after them to plan against."""

    pending: dict[str, int] = field(default_factory=dict)  # env -> migrations an earlier step would push
    rows: dict[str, tuple[str, int]] = field(default_factory=dict)  # env -> (step, rows it would write there)


@dataclass
class WorkflowResult(Result):
    workflow: str
    dry_run: bool
    steps: list[StepResult] = field(default_factory=list)
    resume: str = ""
    exit_code: int = 0
    commit: str | None = None  # the functions' commit a release deployed

    def rows(self) -> Table:
        return Table(["step", "status", "detail"], [[s.step, s.status, s.detail] for s in self.steps])

    def footer(self) -> str:
        if self.resume:
            return f"resume with: {self.resume}"
        done = sum(s.status == "done" for s in self.steps)
        if not self.dry_run:
            return f"{self.workflow}: {done} of {len(self.steps)} step(s) done"
        partial = [s.step for s in self.steps if s.status == "planned in part"]
        return f"{self.workflow}: {done + len(partial)} of {len(self.steps)} step(s) planned (dry run)" + (
            f"; planned in part: {', '.join(partial)} (an earlier step changes what they read)" if partial else ""
        )

    def failure(self) -> OpsError | None:
        if not self.exit_code:
            return None
        error = UserError if self.exit_code == 2 else OperationFailed
        return error(f"{self.workflow} stopped at a failed step; resume with: {self.resume}")


@dataclass
class WorkflowPlan:
    """A workflow's plan: its steps and, once planned, each step's plan (`planned.steps`, as a dry
    run shows them). Applying it runs these same steps, which re-check what they read."""

    workflow: str
    steps: list[Step]
    planned: WorkflowResult | None = None  # None where nothing needed a plan (no dry run, nobody asked)

    def step_plans(self) -> list[tuple[Step, StepResult]]:
        return list(zip(self.steps, self.planned.steps, strict=True)) if self.planned else []

    def text(self) -> str:
        """The plan as the question shows it."""
        if self.planned is None:
            return ""
        rows = self.planned.rows()
        return f"plan ({self.workflow} --dry-run):\n" + table(rows.rows, rows.headers)


def plan_steps(name: str, steps: list[Step], *, command: CommandLine, resume_at: str | None) -> WorkflowPlan:
    """Each step's plan in order, read-only; the plan stops at the first step that cannot be planned."""
    return WorkflowPlan(name, steps, run_steps(name, steps, command=command, dry_run=True, resume_at=resume_at))


def apply_steps(plan: WorkflowPlan, *, command: CommandLine, resume_at: str | None) -> WorkflowResult:
    """The plan's steps applied in order, stopping at the first failure."""
    return run_steps(plan.workflow, plan.steps, command=command, dry_run=False, resume_at=resume_at)


def run_steps(
    name: str, steps: list[Step], *, command: CommandLine, dry_run: bool, resume_at: str | None
) -> WorkflowResult:
    """Plan (`dry_run`) or apply each step from `resume_at` on; the first failure ends the run."""
    names = [s.name for s in steps]
    if resume_at and resume_at not in names:
        raise UserError(f"--resume-at {resume_at}: {name} has the steps {', '.join(names)}")
    result = WorkflowResult(name, dry_run)
    start = names.index(resume_at) if resume_at else 0
    result.steps = [StepResult(s.name, "skipped", "before --resume-at") for s in steps[:start]]
    for index, step in enumerate(steps[start:], start):
        progress(f"== {name} step {index + 1}/{len(steps)}: {step.name}{' (dry run)' if dry_run else ''}")
        try:
            if dry_run:
                assert step.plan is not None, f"{name} has no dry run"  # only backup, which plans nothing
                detail = step.plan()
            else:
                detail = step.apply()
        except PlannedInPart as partial:
            result.steps.append(StepResult(step.name, "planned in part", str(partial)))
            continue
        except OpsError as error:
            # One line (a colon there introduced the lines after it); the resume line below is the re-run.
            result.steps.append(StepResult(step.name, "failed", first_line(error).rstrip(":")))
            result.steps += [StepResult(s.name, "not run") for s in steps[index + 1 :]]
            # Every flag of this run is kept (--dry-run, --yes, --json...); only the step changes.
            result.resume = command.at_step(step.name).rerun()
            changed_before = any(s.status == "done" for s in result.steps) and not dry_run
            result.exit_code = 2 if isinstance(error, UserError) and not changed_before else 1
            progress(str(error))
            return result
        result.steps.append(StepResult(step.name, "done", detail))
    return result


def config_diff(config: Config, pairs: list[tuple[Environment, Environment]], tables: list[str] | None) -> str:
    """The row-level diff of each config-data step, as `sync-data --diff` prints it (read-only)."""
    from ops.sync import diff as sync_diff

    parts = []
    for source, target in pairs:
        found = sync_diff.sync_diff(config, source, target, tables, prune=False)
        parts.append(f"config data {source.name} -> {target.name}:\n{found.footer()}")
    return "\n".join(parts)


def run_workflow(
    name: str,
    steps: list[Step],
    *,
    writes: list[Environment],
    yes: bool,
    dry_run: bool,
    action: str,
    command: CommandLine,
    resume_at: str | None,
    details: Callable[[], str] | None = None,
) -> WorkflowResult:
    """A dry run is the plan. Otherwise, where a protected environment it `writes` to asks, the plan
    is shown, the question asked once (for every such environment, whatever --resume-at skips),
    and that same plan applied; `details` adds to what is shown (read-only)."""
    if dry_run:
        planned = plan_steps(name, steps, command=command, resume_at=resume_at).planned
        assert planned is not None
        return planned
    asking = [env for env in dict.fromkeys(writes) if will_ask(env, yes=yes)]
    plan = WorkflowPlan(name, steps)
    if asking and not sys.stdin.isatty():
        for env in asking:
            confirm_write(env, yes=yes, action=action)  # refused at once where nobody can type the name
    elif asking:
        plan = plan_steps(name, steps, command=command, resume_at=resume_at)
        confirm_plan(plan, asking, action=action, details=details)
    return apply_steps(plan, command=command, resume_at=resume_at)


def confirm_plan(
    plan: WorkflowPlan, asking: list[Environment], *, action: str, details: Callable[[], str] | None
) -> None:
    """Show the plan, then ask for each environment in `asking`; a plan that stopped at a failed
    step is shown and refused, asking nothing."""
    assert plan.planned is not None
    shown = plan.text()
    if details and not plan.planned.exit_code:
        shown += "\n" + details()
    if plan.planned.exit_code:
        print(shown, flush=True)
        raise UserError(f"the plan stopped at a failed step ({plan.planned.resume}); nothing was changed or asked")
    for index, env in enumerate(asking):
        confirm_write(env, yes=False, action=action, plan=shown if index == 0 else "")


# ---------------------------------------------------------------- the steps


def push_step(config: Config, env: Environment, planned: DryRun) -> Step:
    def push(dry_run: bool) -> str:
        result = migrations.push_migrations(config, env=env.name, dry_run=dry_run, yes=True, show=progress)
        row = result.envs[0]
        if result.failed:
            raise OperationFailed(f"{env.name}: {row.detail}")
        if dry_run:
            planned.pending[env.name] = row.pending
        return f"{env.name}: {row.status}, {row.applied or row.pending} migration(s)"

    return Step("migrations", apply=lambda: push(False), plan=lambda: push(True))


def tested_first_step(config: Config, env: Environment) -> Step | None:
    staging = config.migrations.test_first.get(env.name)
    if not staging:
        return None

    def check() -> str:
        local = migrations.local_migrations(config)
        _, missing = migrations.not_yet_tested(config, env, [m.version for m in local])
        if missing:
            raise UserError(
                f"{staging} lacks migration(s) {', '.join(missing)}: release to {staging} first "
                f"({program()} release --env {staging})"
            )
        return f"{staging} has all {len(local)} migrations"

    return Step(f"{staging}-first", apply=check, plan=check)  # read-only either way


def deploy_step(
    config: Config,
    env: Environment,
    only: list[str] | None = None,
    changed_since: str | None = None,
    deployed: dict[str, str | None] | None = None,
    *,
    command: CommandLine,
) -> Step:
    """Deploy functions; `deployed` receives the commit that went out (for the workflow's record)."""

    def deploy(dry_run: bool) -> str:
        result = functions.deploy_functions(
            config,
            env=env.name,
            only=only,
            changed_since=changed_since,
            dry_run=dry_run,
            yes=True,
            command=command.at_step("functions"),
        )
        if deployed is not None and not dry_run:
            deployed["commit"] = result.commit
        failed = result.failure()  # its re-run line is this workflow resumed here: the step's detail leaves it out
        if failed:
            raise failed
        verb = "would deploy" if dry_run else "deployed"
        at = f" at {result.short_commit}" if result.commit else ""
        return f"{verb} {len(result.functions)} function(s) to {env.name}{at}"

    return Step("functions", apply=lambda: deploy(False), plan=lambda: deploy(True))


def data_step(
    config: Config,
    source: Environment,
    target: Environment,
    planned: DryRun,
    tables: list[str] | None = None,
    name: str = "config-data",
) -> Step:
    """Sync config data; the step applies the sync plan its own plan counted (made anew if it made none)."""
    made: list[sync_data.SyncPlan] = []

    def sync_plan_of_step() -> sync_data.SyncPlan:
        if not made:
            made.append(sync_data.plan(config, source=source.name, target=target.name, tables=tables))
        return made[0]

    def counted(result: sync_data.SyncResult, verb: str) -> str:
        inserted = sum(t.inserted for t in result.tables)
        updated = sum(t.updated for t in result.tables)
        return f"{len(result.tables)} tables {source.name} -> {target.name}: {verb} {inserted}, updated {updated}"

    def plan() -> str:
        try:
            result = sync_data.preview(config, sync_plan_of_step())
        except sync_plan.SchemaBehind as behind:
            pending = planned.pending.get(target.name, 0)
            if not pending:
                raise
            raise PlannedInPart(
                f"not compared: {first_line(behind)}, which the migrations step would do first "
                f"({pending} migration(s) for {target.name})"
            ) from None
        detail = counted(result, "would insert")
        before = planned.rows.get(source.name)
        planned.rows[target.name] = (name, sum(t.inserted + t.updated for t in result.tables))
        if before and before[1]:
            raise PlannedInPart(
                f"{detail}, from {source.name} as it is now: step {before[0]} would write {before[1]} row(s) "
                "into it first"
            )
        return detail

    def apply() -> str:
        return counted(sync_data.apply(config, sync_plan_of_step()), "inserted")

    return Step(name, apply=apply, plan=plan)


def storage_step(
    config: Config,
    source: Environment,
    target: Environment,
    buckets: list[str] | None = None,
    *,
    command: CommandLine,
) -> Step:
    def sync(dry_run: bool) -> str:
        result = storage.sync_storage(
            config,
            source=source.name,
            target=target.name,
            buckets=buckets,
            dry_run=dry_run,
            yes=True,
            command=command.at_step("storage"),
        )
        failed = result.failure()
        if failed:
            raise failed
        copied = sum(b.copied for b in result.buckets)
        return f"{'would copy' if dry_run else 'copied'} {copied} object(s) {source.name} -> {target.name}"

    return Step("storage", apply=lambda: sync(False), plan=lambda: sync(True))


def smoke_step(config: Config, env: Environment) -> Step:
    from ops.views import smoke

    def plan() -> str:
        return f"would check {len(smoke.probes(config, env))} URL(s) of {env.name}"

    def apply() -> str:
        report = smoke.smoke(config, env.name)
        error = report.failure()
        if error:
            raise error
        return report.footer()

    return Step("smoke", apply=apply, plan=plan)


def code_step(config: Config) -> Step:
    from ops.platform import lovable

    return Step(
        "code",
        apply=lambda: lovable.update_lovable(config, dry_run=False).summary,
        plan=lambda: lovable.update_lovable(config, dry_run=True).summary,
    )


# ---------------------------------------------------------------- the workflows


def release(
    config: Config,
    *,
    env: str | None,
    only: list[str] | None,
    changed_since: str | None,
    dry_run: bool,
    yes: bool,
    resume_at: str | None,
    smoke: bool = True,
    command: CommandLine | None = None,
) -> WorkflowResult:
    target = config.env(env or config.workflows.preprod)
    line = command or CommandLine(
        "release", {"env": target.name, "only": only, "changed_since": changed_since, "smoke": None if smoke else False}
    )
    functions.select_functions(config, only, changed_since)  # bad names are refused before any step
    steps = [s for s in (tested_first_step(config, target),) if s]
    deployed: dict[str, str | None] = {}
    steps += [
        push_step(config, target, DryRun()),
        deploy_step(config, target, only, changed_since, deployed, command=line),
    ]
    if smoke:  # the card's "test on the preview URL", as the release's last step
        steps.append(smoke_step(config, target))
    result = run_workflow(
        "release",
        steps,
        writes=[target],
        yes=yes,
        dry_run=dry_run,
        action="release to it",
        command=line,
        resume_at=resume_at,
    )
    result.commit = deployed.get("commit")
    return result


def reset_env(
    config: Config,
    *,
    source: str | None,
    target: str | None,
    dry_run: bool,
    yes: bool,
    resume_at: str | None,
    command: CommandLine | None = None,
) -> WorkflowResult:
    source_env, target_env = config.env(source or config.workflows.prod), config.env(target or config.workflows.preprod)
    distinct(source_env, target_env)
    line = command or CommandLine("reset-env", {"from": source_env.name, "to": target_env.name})
    planned = DryRun()
    steps = [
        push_step(config, target_env, planned),
        data_step(config, source_env, target_env, planned),
        storage_step(config, source_env, target_env, command=line),
        deploy_step(config, target_env, command=line),
    ]
    return run_workflow(
        "reset-env",
        steps,
        writes=[target_env],
        yes=yes,
        dry_run=dry_run,
        action=f"reset it from {source_env.name}",
        command=line,
        resume_at=resume_at,
        details=lambda: config_diff(config, [(source_env, target_env)], None),
    )


def refresh_sandbox(
    config: Config,
    *,
    source: str | None,
    sandbox: str | None,
    dry_run: bool,
    yes: bool,
    resume_at: str | None,
    command: CommandLine | None = None,
) -> WorkflowResult:
    source_env, sandbox_env = (
        config.env(source or config.workflows.prod),
        config.env(sandbox or config.workflows.sandbox),
    )
    distinct(source_env, sandbox_env)
    line = command or CommandLine("refresh-sandbox", {"from": source_env.name, "sandbox": sandbox_env.name})
    planned = DryRun()
    steps = [
        code_step(config),
        push_step(config, sandbox_env, planned),
        data_step(config, source_env, sandbox_env, planned),
        storage_step(config, source_env, sandbox_env, config.workflows.sandbox_buckets, command=line),
    ]
    return run_workflow(
        "refresh-sandbox",
        steps,
        writes=[sandbox_env],
        yes=yes,
        dry_run=dry_run,
        action="refresh it",
        command=line,
        resume_at=resume_at,
    )


def promote_config(
    config: Config,
    *,
    tables: list[str] | None,
    sandbox: str | None,
    preprod: str | None,
    prod: str | None,
    dry_run: bool,
    yes: bool,
    resume_at: str | None,
    command: CommandLine | None = None,
) -> WorkflowResult:
    if not tables:
        raise UserError("name the tables to promote: --tables programs,program_modules")
    sync_plan.select_tables(config.sync_data, tables)
    sandbox_env, preprod_env, prod_env = (
        config.env(sandbox or config.workflows.sandbox),
        config.env(preprod or config.workflows.preprod),
        config.env(prod or config.workflows.prod),
    )
    if len({sandbox_env.name, preprod_env.name, prod_env.name}) < 3:
        raise UserError(
            f"promote-config needs three different environments, not sandbox={sandbox_env.name} "
            f"preprod={preprod_env.name} prod={prod_env.name}"
        )
    line = command or CommandLine(
        "promote-config", {"tables": tables, "sandbox": sandbox, "preprod": preprod, "prod": prod}
    )
    planned = DryRun()
    first, second = f"{sandbox_env.name}-to-{preprod_env.name}", f"{preprod_env.name}-to-{prod_env.name}"
    steps = [
        data_step(config, sandbox_env, preprod_env, planned, tables, name=first),
        data_step(config, preprod_env, prod_env, planned, tables, name=second),
    ]
    return run_workflow(
        "promote-config",
        steps,
        writes=[preprod_env, prod_env],  # both asked about before the first step, whatever --resume-at skips
        yes=yes,
        dry_run=dry_run,
        action=f"promote {', '.join(tables)} into it",
        command=line,
        resume_at=resume_at,
        # preprod -> prod as preprod is now: the first step adds what sandbox -> preprod shows.
        details=lambda: config_diff(config, [(sandbox_env, preprod_env), (preprod_env, prod_env)], tables),
    )


def full_backup(
    config: Config,
    *,
    env: str | None,
    keep: dict[str, int | None] | None = None,
    resume_at: str | None,
    copy_to: str | None = None,
    to: str | None = None,
    command: CommandLine | None = None,
) -> WorkflowResult:
    """`keep`: the retention flags given (last, daily, weekly, monthly), each in place of its [backup] setting.
    `to`: back up straight to this backup target (no local series); `copy_to`: back up here, then copy there."""
    from ops.backup.remote import chosen_target

    straight = chosen_target(config, to, copy_to)
    envs = config.envs_named(
        env,
        default=[config.workflows.prod],
        having=lambda e: bool(e.storage_url and e.db_url),
        needs="both a db_url and a storage_url",
    )
    policy = policy_from(config.backup.retention, **(keep or {}))
    full.refuse_artifact_buckets(config.storage.buckets)
    from ops.db.dump import tool

    for environment in envs:  # pg_dump (a whole session, the password) is refused before any step
        dburl.for_pg_tool(environment, tool("pg_dump"))
    target = config.target(copy_to) if copy_to else None

    def backup_one(environment: Environment) -> Step:
        return Step(environment.name, apply=lambda: full.back_up(config, environment, policy, target, straight))

    return apply_steps(
        WorkflowPlan("backup", [backup_one(e) for e in envs]),
        command=command or CommandLine("backup", {"env": env or config.workflows.prod}),
        resume_at=resume_at,
    )
