"""`inv promote-settings`: one project's settings onto another, reviewable, guarded and reversible.

Only what differs is sent, area by area, as the API's own bodies. Never sent: per-environment
keys, secret fields (their values cannot be read back: listed to set by hand), and what the
API does not let anyone set. A change that weakens security (ops/settings/rules.py) is
refused unless named in --allow-weaker. The target's current settings of the areas about to
change are saved to `<run>/before/settings.json` first; `--from-export <run>/before` puts them
back. The first area that fails stops the run: the areas already applied are named, with the undo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, UserError
from ops.platform import management_api
from ops.report import Result, Table
from ops.safety import confirm_write, distinct
from ops.settings.drift import AREAS, OWN_REF, EnvSettings, is_per_env, need_token, normalise, read_env, shown
from ops.settings.rules import weakenings
from ops.stamps import new_run_dir

PROMOTABLE = ("auth", "api", "storage", "database", "pooler", "network", "ssl")
ELSEWHERE = {
    "buckets": "bucket settings come from migrations: inv push-migrations",
    "functions": "functions are deployed from git: inv deploy-functions",
    "secrets": "function secrets cannot be read back: set them by hand (supabase secrets set)",
}
# What each area's GET answers that its write does not take.
READ_ONLY = {
    "auth": {
        "custom_oauth_max_providers",
        "saml_allow_encrypted_assertions",
        "nimbus_oauth_email_optional",
        "mfa_allow_low_aal",
        "audit_log_disable_postgres",
        "security_update_password_require_current_password",
        "index_worker_ensure_user_search_indexes_exist",
    },
    "pooler": {"database_type", "db_port", "db_name", "max_client_conn", "is_using_scram_auth"},
}
WRITES = {  # area -> (method, path)
    "auth": ("PATCH", "config/auth"),
    "api": ("PATCH", "postgrest"),
    "storage": ("PATCH", "config/storage"),
    "database": ("PUT", "config/database/postgres"),
    "pooler": ("PATCH", "config/database/pooler"),
    "network": ("POST", "network-restrictions/apply"),
    "ssl": ("PUT", "ssl-enforcement"),
}


class Absent:
    """A key one side does not have (a database override not set)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = Absent()
BEFORE_FILE = "settings.json"
CIDR_LISTS = ("dbAllowedCidrs", "dbAllowedCidrsV6")


@dataclass
class Change:
    area: str
    key: str
    old: Any
    new: Any  # ABSENT: the key is removed (database overrides only)

    @property
    def setting(self) -> str:
        return f"{self.area}.{self.key}"

    def line(self) -> str:
        return f"{self.setting}: {text(self.old)} -> {text(self.new)}"


def text(value: Any) -> str:
    return repr(value) if value is ABSENT else shown(value)


def exact(value: Any) -> Any:
    """A value for JSON: whole (a table cuts long ones short)."""
    return repr(value) if value is ABSENT else value


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    not_sent: list[tuple[str, str]] = field(default_factory=list)  # (setting, why)

    @property
    def areas(self) -> list[str]:
        return [a for a in PROMOTABLE if any(c.area == a for c in self.changes)]

    def text(self, source: str, target: str) -> str:
        lines = [f"plan for {target} (from {source}): {len(self.changes)} setting(s) in {len(self.areas)} area(s)"]
        lines += [f"  {c.line()}" for c in self.changes]
        lines += [f"  not sent: {setting}: {why}" for setting, why in self.not_sent]
        return "\n".join(lines)


def with_ref(value: Any, ref: str) -> Any:
    """A value compared with `<ref>` in it, as the target project needs it."""
    if isinstance(value, str):
        return value.replace(OWN_REF, ref)
    if isinstance(value, list):
        return [with_ref(v, ref) for v in value]
    return value


def plan_promotion(source: EnvSettings, target: EnvSettings, areas: list[str], per_env: list[str]) -> Plan:
    plan = Plan()
    for area in areas:
        if area in ELSEWHERE:
            plan.not_sent.append((area, ELSEWHERE[area]))
            continue
        wanted, current = source.values.get(area, {}), target.values.get(area, {})
        for key in sorted(set(wanted) | set(current)):
            old, new = current.get(key, ABSENT), wanted.get(key, ABSENT)
            if old == new:
                continue
            setting = f"{area}.{key}"
            if is_per_env(area, key, per_env):
                plan.not_sent.append((setting, "per environment"))
            elif key in READ_ONLY.get(area, set()):
                plan.not_sent.append((setting, "not settable through the API"))
            elif new is ABSENT and area != "database":
                plan.not_sent.append((setting, f"not in {source.env}"))
            else:
                plan.changes.append(Change(area, key, old, new))
        for key, is_set in sorted(source.secrets.get(area, {}).items()):
            if is_set:  # its value cannot be read back: whoever knows it sets it
                unset = not target.secrets.get(area, {}).get(key)
                plan.not_sent.append(
                    (f"{area}.{key}", "secret: set by hand" + (f" (unset in {target.env})" if unset else ""))
                )
    return plan


def request(area: str, changes: list[Change], wanted: EnvSettings, target: EnvSettings) -> tuple[str, str, Any]:
    """(method, path, body) of the API's own write for one area's changes."""
    method, path = WRITES[area]
    new = {c.key: with_ref(c.new, target.ref) for c in changes}
    if area == "storage":
        body: dict[str, Any] = {}
        current = target.values["storage"]
        for key, value in new.items():
            top, _, rest = key.partition(".")
            if top == "features":  # the API takes a feature whole
                feature = rest.split(".")[0]
                prefix = f"features.{feature}."
                whole = {k.removeprefix(prefix): v for k, v in current.items() if k.startswith(prefix)}
                whole.update({k.removeprefix(prefix): v for k, v in new.items() if k.startswith(prefix)})
                body.setdefault("features", {})[feature] = whole
            elif top == "external":
                body["external"] = {rest: value}
            else:
                body[key] = value
        return method, path, body
    if area == "database":  # PUT: the whole set of overrides
        desired = {**target.raw.get("database", {}), **new}
        return method, path, {k: v for k, v in desired.items() if v is not ABSENT}
    if area == "network":  # the whole list, in the order it was given
        lists = {name: (wanted if name in new else target).raw["network"]["config"] for name in CIDR_LISTS}
        return method, path, {name: list(lists[name].get(name) or []) for name in CIDR_LISTS}
    if area == "ssl":
        return method, path, {"requestedConfig": {"database": new["currentConfig.database"]}}
    return method, path, new


# ---------------------------------------------------------------- result


@dataclass
class PromoteResult(Result):
    source: str
    target: str
    dry_run: bool
    plan: Plan
    run_dir: str = ""
    applied: list[str] = field(default_factory=list)
    failed_area: str = ""
    reason: str = ""
    undo: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "changes": [{"setting": c.setting, "old": exact(c.old), "new": exact(c.new)} for c in self.plan.changes],
            "not_sent": [{"setting": s, "why": w} for s, w in self.plan.not_sent],
            "applied": self.applied,
            "failed": self.failed_area or None,
            "reason": self.reason or None,
            "run_dir": self.run_dir or None,
            "undo": self.undo or None,
        }

    def rows(self) -> Table:
        def state(change: Change) -> str:
            if self.dry_run:
                return "would send"
            if change.area in self.applied:
                return "sent"
            return "failed" if change.area == self.failed_area else "not sent (stopped before)"

        rows = [[c.setting, text(c.old), text(c.new), state(c)] for c in self.plan.changes]
        rows += [[s, "", "", f"not sent: {w}"] for s, w in self.plan.not_sent]
        return Table(["setting", f"{self.target} now", f"from {self.source}", ""], rows)

    def footer(self) -> str:
        lines = []
        if not self.plan.changes:
            lines.append(f"nothing to send: {self.target} has {self.source}'s settings in the areas compared")
        elif self.dry_run:
            lines.append(f"dry run: nothing sent ({len(self.plan.changes)} setting(s) would change)")
        else:
            lines.append(f"applied: {', '.join(self.applied) or 'none'}")
        if self.failed_area:
            lines.append(f"{self.failed_area} failed: {self.reason}; the areas after it were not sent")
        if self.undo:
            lines.append(f"undo: {self.undo}")
        return "\n".join(lines)

    def failure(self) -> OpsError | None:
        if not self.failed_area:
            return None
        return OperationFailed(
            f"{self.failed_area} failed ({self.reason}); applied: {', '.join(self.applied) or 'none'}; "
            f"undo: {self.undo}"
        )


# ---------------------------------------------------------------- doing


def save_before(run_dir: Path, target: EnvSettings, areas: list[str]) -> Path:
    """The target's settings of the areas about to change, private like a backup."""
    from ops.stamps import seal_private

    before = run_dir / "before"
    before.mkdir(mode=0o700)
    data = {
        "env": target.env,
        "ref": target.ref,
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        "areas": {area: target.raw[area] for area in areas},
    }
    handle = os.open(before / BEFORE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    seal_private(run_dir)
    return before


def load_export(folder: Path, target: Environment) -> EnvSettings:
    path = folder / BEFORE_FILE if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        areas = data["areas"]
        ref = data["ref"]
    except FileNotFoundError:
        raise UserError(f"--from-export {folder}: no {BEFORE_FILE} there (name a promotion's <run>/before)") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"--from-export {folder}: {path.name} is not a settings export") from None
    if ref != target.ref:
        raise UserError(
            f"--from-export {folder} holds the settings of {data.get('env')} ({ref}), not of {target.name}: "
            f"an undo goes back to the project it was taken from"
        )
    found = EnvSettings(f"export {folder}", ref)
    for area, raw in areas.items():
        if area not in PROMOTABLE:
            raise UserError(f"--from-export {folder}: unknown area {area!r}")
        found.raw[area] = raw
        found.values[area], _ = normalise(area, raw, ref)
    return found


def allowed(setting: str, allow_weaker: list[str]) -> bool:
    return setting in allow_weaker or setting.split(".", 1)[1] in allow_weaker


def undo_command(run_dir: Path, target: str, plan: Plan) -> str:
    """The undo, naming with --allow-weaker what going back loosens (what this run tightened)."""
    back = weakenings([(c.setting, c.new if c.new is not ABSENT else None, c.old) for c in plan.changes])
    allow = f" --allow-weaker {','.join(w.setting.split('.', 1)[1] for w in back)}" if back else ""
    return f"inv promote-settings --from-export {run_dir / 'before'} --to {target}{allow}"


def promote_settings(
    config: Config,
    *,
    source: str | None,
    from_export: str | None,
    target: str | None,
    only: list[str] | None = None,
    dry_run: bool = False,
    yes: bool = False,
    allow_weaker: list[str] | None = None,
) -> PromoteResult:
    if bool(source) == bool(from_export):
        raise UserError("name where the settings come from: --from ENV or --from-export <run>/before (one of them)")
    if not target:
        raise UserError("name the environment to change: --to ENV")
    target_env = config.env(target)
    if not target_env.ref:
        raise UserError(f"environment '{target_env.name}' has no ref: add the project ref to its section")
    unknown = [a for a in only or [] if a not in AREAS]
    if unknown:
        raise UserError(f"--only: no area {', '.join(unknown)}; areas: {','.join(AREAS)}")
    areas = [a for a in AREAS if a in only] if only else list(PROMOTABLE)
    need_token()
    allow_weaker = allow_weaker or []
    if from_export:
        wanted = load_export(Path(from_export).expanduser(), target_env)
        areas = [a for a in areas if a in wanted.raw or a in ELSEWHERE and only]
    else:
        source_env = config.env(source)
        distinct(source_env, target_env)
        if not source_env.ref:
            raise UserError(f"environment '{source_env.name}' has no ref: add the project ref to its section")
        wanted = read_env(source_env, [a for a in areas if a in PROMOTABLE])
    current = read_env(target_env, [a for a in areas if a in PROMOTABLE])
    unread = [f"{e.env}: {a} ({why})" for e in (wanted, current) for a, why in {**e.errors, **e.skipped}.items()]
    if unread:
        raise OperationFailed(f"cannot read the settings to compare, nothing was sent: {'; '.join(unread)}")
    plan = plan_promotion(wanted, current, areas, config.per_env_settings)
    source_name = wanted.env
    refused = [
        w for w in weakenings([(c.setting, c.old, c.new) for c in plan.changes]) if not allowed(w.setting, allow_weaker)
    ]
    if refused:
        lines = [f"  {w.setting}: {shown(w.old)} -> {shown(w.new)} weakens security: {w.rule}" for w in refused]
        names = ",".join(w.setting.split(".", 1)[1] for w in refused)
        raise UserError(
            f"refused: {len(refused)} change(s) would weaken {target_env.name}; nothing was sent\n"
            + "\n".join(lines)
            + f"\nto send them all the same: --allow-weaker {names}"
        )
    result = PromoteResult(source_name, target_env.name, dry_run, plan)
    if dry_run or not plan.changes:
        return result
    confirm_write(
        target_env,
        yes=yes,
        action=f"change {len(plan.changes)} setting(s)",
        plan=plan.text(source_name, target_env.name),
    )
    run_dir = new_run_dir(config.sync_data.export_dir.parent / "settings" / target_env.name)
    save_before(run_dir, current, plan.areas)
    result.run_dir = str(run_dir)
    result.undo = undo_command(run_dir, target_env.name, plan)
    for area in plan.areas:
        method, path, body = request(area, [c for c in plan.changes if c.area == area], wanted, current)
        try:
            management_api.call(method, target_env.ref, path, body)
        except OpsError as error:
            result.failed_area, result.reason = area, str(error)
            break
        result.applied.append(area)
    return result
