"""Describe the configured environments for `inv envs`: what is set, never a secret's value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.config import Config
from ops.report import Result, Table


@dataclass
class EnvironmentsReport(Result):
    environments: list[dict[str, str]]

    def rows(self) -> Table:
        headers = list(self.environments[0]) if self.environments else []
        return Table(headers, [list(row.values()) for row in self.environments])

    def to_dict(self) -> dict[str, Any]:
        return {"environments": self.environments}


def environments_report(config: Config) -> EnvironmentsReport:
    rows = []
    for env in config.environments.values():
        secrets = [env.db_password_var, env.s3_key_id_var, env.s3_secret_var]
        rows.append(
            {
                "env": env.name,
                "ref": env.ref,
                "branch": env.branch,
                "frontend": env.frontend,
                "protected": "yes" if env.protected else "no",
                "database": env.db_url or "-",
                "storage": env.storage_url or "-",
                "secrets set": ", ".join(v.removeprefix(env.secret_prefix + "_") for v in secrets if env.secret(v))
                or "none",
            }
        )
    return EnvironmentsReport(rows)
