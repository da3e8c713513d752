"""The weakening table: each rule decides as the README says, and the README shows the table itself."""

from __future__ import annotations

import pytest

from ops.config import REPO_ROOT
from ops.settings.rules import readme_table, weakenings

LETTERS_DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789"
LOWER_UPPER_DIGITS = "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789"

CASES = [
    ("auth.password_min_length", 12, 8, True),
    ("auth.password_min_length", 8, 12, False),
    ("auth.password_required_characters", LOWER_UPPER_DIGITS, LETTERS_DIGITS, True),
    ("auth.password_required_characters", "", LETTERS_DIGITS, False),
    ("auth.mfa_totp_enroll_enabled", True, False, True),
    ("auth.mfa_web_authn_verify_enabled", True, False, True),
    ("auth.mfa_totp_enroll_enabled", False, True, False),
    ("auth.security_captcha_enabled", True, False, True),
    ("auth.disable_signup", True, False, True),
    ("auth.disable_signup", False, True, False),
    ("auth.external_anonymous_users_enabled", False, True, True),
    ("auth.mailer_autoconfirm", False, True, True),
    ("auth.sms_autoconfirm", True, False, False),
    ("auth.jwt_exp", 3600, 7200, True),
    ("auth.jwt_exp", 3600, 600, False),
    ("auth.security_refresh_token_reuse_interval", 10, 60, True),
    ("auth.refresh_token_rotation_enabled", True, False, True),
    ("auth.mailer_secure_email_change_enabled", True, False, True),
    ("ssl.currentConfig.database", True, False, True),
    ("ssl.currentConfig.database", False, True, False),
    ("network.dbAllowedCidrs", ["10.0.0.0/8"], ["10.1.0.0/16"], False),
    ("network.dbAllowedCidrs", ["10.0.0.0/8"], ["10.0.0.0/8", "192.168.0.0/16"], True),
    ("network.dbAllowedCidrs", ["10.1.0.0/16"], ["0.0.0.0/0"], True),
    ("network.dbAllowedCidrsV6", ["2001:db8::/32"], ["2001:db8:1::/48"], False),
    ("api.max_rows", 1000, 5000, True),
    ("api.max_rows", 1000, 500, False),
    ("api.db_schema", "public,graphql_public", "public,graphql_public,private", True),
    ("api.db_schema", "public,graphql_public", "public", False),
    ("auth.site_url", "https://a.example", "http://localhost:3000", False),  # per environment, not a rule
]


@pytest.mark.parametrize(("setting", "old", "new", "weaker"), CASES, ids=[f"{c[0]}:{c[1]}->{c[2]}"[:60] for c in CASES])
def test_each_rule_decides(setting, old, new, weaker):
    assert bool(weakenings([(setting, old, new)])) is weaker


def test_the_readme_shows_the_table_in_the_code():
    assert readme_table() in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
