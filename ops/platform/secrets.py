"""Secret names and digests per environment, from the CLI; values are never fetched or shown."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, last_line
from ops.platform import supabase_cli
from ops.platform.supabase_cli import cli_workdir
from ops.report import Result, Table

# Every hosted project has these, each with its own value.
PLATFORM_DEFAULTS = {"SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL"}


@dataclass
class EnvSecrets:
    env: str
    digests: dict[str, str] = field(default_factory=dict)  # name -> digest (not the value)
    error: str | None = None


def list_secrets(config: Config, env: Environment) -> EnvSecrets:
    if not env.ref:
        return EnvSecrets(env.name, error="no project ref configured")
    result = supabase_cli.run(["secrets", "list", "--project-ref", env.ref, "-o", "json"], workdir=cli_workdir(config))
    if not result.ok:
        return EnvSecrets(env.name, error=last_line(result.stderr, f"exit {result.returncode}"))
    try:
        return EnvSecrets(env.name, {item["name"]: item.get("value", "") for item in json.loads(result.stdout)})
    except (ValueError, KeyError, TypeError):
        return EnvSecrets(env.name, error="the CLI printed something that is not a secret list")


@dataclass
class SecretsReport(Result):
    envs: list[EnvSecrets]

    @property
    def names(self) -> list[str]:
        return sorted({name for e in self.envs for name in e.digests})

    def rows(self) -> Table:
        """One row per secret name: each env's digest prefix or 'missing', and whether they agree."""
        reachable = [e for e in self.envs if e.error is None]
        headers = ["secret", *[e.env for e in self.envs]] + (["status"] if len(self.envs) > 1 else [])
        rows = []
        for name in self.names:
            cells = [name]
            for e in self.envs:
                cells.append("unreachable" if e.error else (e.digests[name][:12] if name in e.digests else "MISSING"))
            if len(self.envs) > 1:
                present = {e.digests[name] for e in reachable if name in e.digests}
                lacking = [e.env for e in reachable if name not in e.digests]
                notes = [f"missing in {', '.join(lacking)}"] if lacking else []
                if name in PLATFORM_DEFAULTS:  # the platform sets these per project: different by design
                    notes.append("platform default (one per project)")
                elif len(present) > 1:
                    notes.append("digests differ")
                cells.append("; ".join(notes) or "same")
            rows.append(cells)
        return Table(headers, rows)

    def to_dict(self) -> dict:
        return {"envs": [asdict(e) for e in self.envs]}

    def footer(self) -> str:
        return "\n".join(f"{e.env}: unreachable ({e.error})" for e in self.envs if e.error)

    def failure(self) -> OpsError | None:
        unread = [e.env for e in self.envs if e.error]
        return OperationFailed(f"could not list the secrets of {', '.join(unread)}") if unread else None


def secrets_report(config: Config, env: str | None) -> SecretsReport:
    envs = config.envs_named(env, default=[config.workflows.prod], having=lambda e: bool(e.ref), needs="a project ref")
    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        report = SecretsReport(list(pool.map(lambda e: list_secrets(config, e), envs)))
    if len(envs) == 1 and report.envs[0].error:
        raise OperationFailed(f"{envs[0].name}: cannot list secrets: {report.envs[0].error}")
    return report
