"""What counts as weakening a project's security: the one table `promote-settings` refuses by.

Each rule names the settings it covers (`area.key`, `*` matching within a key) and decides,
from the old and the new value, whether the change weakens the project. The README's table
is this one (tests/unit/test_settings_rules.py keeps them the same).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def lower(old: Any, new: Any) -> bool:
    return isinstance(old, int | float) and (new is None or isinstance(new, int | float) and new < old)


def higher(old: Any, new: Any) -> bool:
    return isinstance(new, int | float) and (old is None or isinstance(old, int | float) and new > old)


def turned_off(old: Any, new: Any) -> bool:
    return old is True and new is not True


def turned_on(old: Any, new: Any) -> bool:
    return old is not True and new is True


def character_groups(value: Any) -> int:
    """How many kinds of character a password must have (the API's values list them, ':'-separated)."""
    return len(value.split(":")) if isinstance(value, str) and value else 0


def fewer_requirements(old: Any, new: Any) -> bool:
    return character_groups(new) < character_groups(old)


def widened(old: Any, new: Any) -> bool:
    """Some address the new CIDR list lets in was not let in by the old one."""

    def networks(value: Any) -> list[Any]:
        return [ipaddress.ip_network(c, strict=False) for c in value or []]

    before = networks(old)
    return any(not any(n.version == o.version and n.subnet_of(o) for o in before) for n in networks(new))


def schema_added(old: Any, new: Any) -> bool:
    def schemas(value: Any) -> set[str]:
        return {s.strip() for s in str(value or "").split(",") if s.strip()}

    return bool(schemas(new) - schemas(old))


@dataclass(frozen=True)
class Rule:
    keys: tuple[str, ...]  # area.key patterns
    weakens: str  # what the rule refuses, as the README says it
    check: Callable[[Any, Any], bool]

    def covers(self, setting: str) -> bool:
        return any(fnmatch.fnmatchcase(setting, pattern) for pattern in self.keys)


RULES: tuple[Rule, ...] = (
    Rule(("auth.password_min_length",), "a shorter minimum password length", lower),
    Rule(("auth.password_required_characters",), "fewer kinds of character required in passwords", fewer_requirements),
    Rule(("auth.password_hibp_enabled",), "the leaked-password check turned off", turned_off),
    Rule(
        ("auth.mfa_*_enroll_enabled", "auth.mfa_*_verify_enabled"),
        "an MFA factor's enroll or verify turned off",
        turned_off,
    ),
    Rule(("auth.security_captcha_enabled",), "captcha turned off", turned_off),
    Rule(("auth.disable_signup",), "sign-up opened (disable_signup true -> false)", turned_off),
    Rule(("auth.external_anonymous_users_enabled",), "anonymous sign-ins turned on", turned_on),
    Rule(("auth.mailer_autoconfirm", "auth.sms_autoconfirm"), "auto-confirm turned on", turned_on),
    Rule(("auth.jwt_exp",), "longer-lived access tokens (jwt_exp raised)", higher),
    Rule(("auth.security_refresh_token_reuse_interval",), "a longer refresh-token reuse interval", higher),
    Rule(("auth.refresh_token_rotation_enabled",), "refresh-token rotation turned off", turned_off),
    Rule(("auth.mailer_secure_email_change_enabled",), "secure email change turned off", turned_off),
    Rule(("ssl.currentConfig.database",), "SSL enforcement turned off", turned_off),
    Rule(
        ("network.dbAllowedCidrs", "network.dbAllowedCidrsV6"),
        "network restrictions widened (a CIDR not inside the old ones)",
        widened,
    ),
    Rule(("api.max_rows",), "PostgREST max_rows raised", higher),
    Rule(("api.db_schema",), "a schema exposed through PostgREST added", schema_added),
)


@dataclass
class Weakening:
    setting: str
    old: Any
    new: Any
    rule: str


def weakenings(changes: list[tuple[str, Any, Any]]) -> list[Weakening]:
    """Each change (setting, old, new) that some rule calls weaker."""
    found = []
    for setting, old, new in changes:
        for rule in RULES:
            if rule.covers(setting) and rule.check(old, new):
                found.append(Weakening(setting, old, new, rule.weakens))
                break
    return found


def readme_table() -> str:
    """The rules as the README shows them."""
    lines = ["| setting | refused when |", "|---|---|"]
    lines += [f"| {', '.join(f'`{k}`' for k in rule.keys)} | {rule.weakens} |" for rule in RULES]
    return "\n".join(lines)
