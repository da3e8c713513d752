"""environments.ini parsing: typed sections, unknown keys, secrets refused (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import config
from ops.errors import UserError

BASE = """
[prod]
ref = qfdztdgublwlmewobxmx
db_url = postgresql://postgres.qfdztdgublwlmewobxmx@aws-0-eu-central-1.pooler.supabase.com:5432/postgres
protected = true
"""


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "environments.ini"
    path.write_text(BASE + text)
    return config.load(path)


def test_defaults_when_sections_are_absent(tmp_path):
    loaded = load(tmp_path, "")
    assert loaded.workflows.defaults == ["prod", "preprod", "sandbox"]
    assert loaded.workflows.sandbox_buckets == ["program-logos", "email-assets"]
    assert loaded.migrations.test_first == {"prod": "preprod"}
    assert loaded.storage.keep == 5 and loaded.functions_jobs == 4
    assert loaded.default_envs() == ["prod"]
    assert loaded.env("prod").protected is True


def test_workflow_names_and_buckets_come_from_the_file(tmp_path):
    loaded = load(tmp_path, "[workflows]\nprod = live\nsandbox_buckets = avatars\n[live]\nref = x\n")
    assert loaded.workflows.prod == "live" and loaded.workflows.sandbox_buckets == ["avatars"]
    assert loaded.default_envs() == ["live"]


@pytest.mark.parametrize(
    "section", ["project", "sync-data", "storage", "migrations", "functions", "backup", "lovable", "workflows", "prod"]
)
def test_unknown_key_in_any_section_is_refused_with_the_known_ones(tmp_path, section):
    text = f"[{section}]\nkepp = 3\n" if section != "prod" else ""
    path = tmp_path / "environments.ini"
    path.write_text(BASE + ("protectd = true\n" if section == "prod" else "") + text)
    with pytest.raises(UserError, match=r"unknown keys (kepp|protectd); known: "):
        config.load(path)


def test_natural_keys_are_not_unknown(tmp_path):
    loaded = load(tmp_path, "[sync-data]\nkey.plans = slug\n")
    assert loaded.sync_data.natural_keys == {"plans": ["slug"]}


@pytest.mark.parametrize(
    "db_url",
    [
        "postgresql://u@h/db?password=hunter2",
        "host=h dbname=db password=hunter2",
        "postgresql://u:hunter2@h/db",
        "postgresql://u@h/db?sslpassword=hunter2",
    ],
    ids=["query-password", "keyword-password", "userinfo-password", "sslpassword"],
)
def test_password_in_db_url_is_refused_naming_the_variable(tmp_path, db_url):
    path = tmp_path / "environments.ini"
    path.write_text(f"[preprod]\nref = jtzcrirqflfnagceendt\ndb_url = {db_url}\n")
    with pytest.raises(UserError, match="OPS_PREPROD_DB_PASSWORD|OPS_PREPROD_") as caught:
        config.load(path)
    assert "hunter2" not in str(caught.value)


def test_credentials_in_storage_url_are_refused(tmp_path):
    path = tmp_path / "environments.ini"
    path.write_text("[preprod]\nstorage_url = https://AKIAX:s3cret@x.storage.supabase.co/storage/v1/s3\n")
    with pytest.raises(UserError, match="OPS_PREPROD_S3_ACCESS_KEY_ID") as caught:
        config.load(path)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[storage]\nkeep = many\n", "whole number"),
        ("[prod]\n", "malformed"),
        ("[migrations]\ntest_first = prod\n", "env:tested_first"),
    ],
    ids=["keep-not-a-number", "duplicate-section", "bad-test-first"],
)
def test_bad_values_are_refused(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load(tmp_path, text)


@pytest.mark.parametrize(
    "line",
    [
        "db_url = postgresql://postgres@db.jtzcrirqflfnagceendt.supabase.co:5432/postgres",
        "db_url = postgresql://postgres.jtzcrirqflfnagceendt@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
        "storage_url = https://jtzcrirqflfnagceendt.storage.supabase.co/storage/v1/s3",
    ],
    ids=["direct-host", "pooler-user", "storage-host"],
)
def test_a_section_pointing_at_another_project_is_refused(tmp_path, line):
    path = tmp_path / "environments.ini"
    path.write_text(f"[preprod]\nref = cezlnvdjildzxpyxyabb\n{line}\n")
    with pytest.raises(UserError, match="jtzcrirqflfnagceendt.*cezlnvdjildzxpyxyabb"):
        config.load(path)


def test_matching_refs_and_local_urls_load(tmp_path):
    loaded = load(
        tmp_path,
        "[preprod]\nref = jtzcrirqflfnagceendt\n"
        "db_url = postgresql://postgres@db.jtzcrirqflfnagceendt.supabase.co:5432/postgres\n"
        "storage_url = https://jtzcrirqflfnagceendt.storage.supabase.co/storage/v1/s3\n"
        "[local]\nref = x\ndb_url = postgresql://postgres@127.0.0.1:5/x\nstorage_url = http://127.0.0.1:9\n",
    )
    assert set(loaded.environments) == {"prod", "preprod", "local"}


def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "environments.ini"
    path.write_bytes(BASE.encode() + "# Réglages de l'équipe\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 0xe9 on line 6\)"):
        config.load(path)


def test_a_byte_order_mark_is_read_as_nothing(tmp_path):
    path = tmp_path / "environments.ini"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.lstrip().encode())
    assert config.load(path).env("prod").protected is True


@pytest.mark.parametrize(
    "host",
    [
        "DB.OTHERREFXXXXXXXXXXXXX.SUPABASE.CO",
        "db.otherrefxxxxxxxxxxxxx.supabase.co.",
        "Db.OtherRefXxxxxxxxxxxxx.Supabase.Co.",
    ],
)
def test_the_ref_guard_sees_through_case_and_trailing_dots(tmp_path, host):
    with pytest.raises(UserError, match="points at project otherrefxxxxxxxxxxxxx"):
        load(tmp_path, f"[preprod]\nref = jtzcrirqflfnagceendt\ndb_url = postgresql://postgres@{host}:5432/postgres\n")


def test_the_ref_guard_reads_storage_hosts_the_same_way(tmp_path):
    with pytest.raises(UserError, match="storage_url host points at project otherrefxxxxxxxxxxxxx"):
        load(
            tmp_path,
            "[preprod]\nref = jtzcrirqflfnagceendt\n"
            "storage_url = https://OTHERREFXXXXXXXXXXXXX.storage.supabase.co./storage/v1/s3\n",
        )


@pytest.mark.parametrize(
    "line",
    [
        "storage_url = https://x.example.com/s3?X-Amz-Signature=abcd1234",
        "functions_url = https://fn.example.com/v1?apikey=live_123",
        "frontend = https://app.example.com/?token=abc",
        "functions_url = https://fn.example.com/v1?a=1&access_token=abc",
        "frontend = sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
    ],
    ids=["x-amz-signature", "apikey", "token", "access_token", "sb_secret"],
)
def test_secrets_in_urls_and_new_style_keys_are_refused(tmp_path, line):
    with pytest.raises(UserError, match="contains a password, key or token"):
        load(tmp_path, f"[preprod]\nref = jtzcrirqflfnagceendt\n{line}\n")


def test_env_takes_one_name_a_list_or_all(tmp_path):
    loaded = load(tmp_path, "[preprod]\nref = jtzcrirqflfnagceendt\n[sandbox]\nref = cezlnvdjildzxpyxyabb\n")
    assert [e.name for e in loaded.envs_named(None, default=["prod"])] == ["prod"]
    assert [e.name for e in loaded.envs_named("sandbox,prod", default=[])] == ["sandbox", "prod"]
    assert [e.name for e in loaded.envs_named(["preprod", "preprod"], default=[])] == ["preprod"]
    assert [e.name for e in loaded.envs_named("all", default=[])] == ["prod", "preprod", "sandbox"]
    assert [e.name for e in loaded.envs_named("all", default=[], having=lambda e: e.protected)] == ["prod"]
    with pytest.raises(UserError, match="unknown environment 'prd'"):
        loaded.envs_named("prod,prd", default=[])
    with pytest.raises(UserError, match="'all' stands alone"):
        loaded.envs_named("all,prod", default=[])


@pytest.mark.parametrize(
    "section",
    [
        # prod's own ref, copied into the restore's section
        "ref = qfdztdgublwlmewobxmx\nregion = eu-central-1",
        # its own ref, but prod's database (pooler user and host, as prod writes them)
        "ref = pitrrestoredxxxxxxxx\ndb_url = postgresql://postgres.qfdztdgublwlmewobxmx"
        "@AWS-0-eu-central-1.pooler.supabase.com.:5432/postgres",
        # a local copy whose db_url is the same database as another local section's
        "ref = pitrrestoredxxxxxxxx\ndb_url = host=127.0.0.1 port=5433 dbname=app user=postgres",
    ],
    ids=["same-ref", "same-pooler-endpoint", "same-local-database"],
)
def test_a_restore_that_is_another_environment_is_refused(tmp_path, section):
    text = (
        "[local]\nref = localxxxxxxxxxxxxxxx\ndb_url = postgresql://postgres@127.0.0.1:5433/app\n"
        f"[prod-pitr]\nrestored_from = prod\n{section}\n"
    )
    with pytest.raises(UserError, match=r"\[prod-pitr\] "):
        load(tmp_path, text)
    with pytest.raises(UserError, match=r"\[prod-pitr\] .*restored_from.*\[(prod|local)\]"):
        config.load(tmp_path / "environments.ini", check_refs=False)  # inv doctor too


def test_a_restore_of_an_unknown_environment_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"\[prod-pitr\] restored_from = prd names no other environment"):
        load(tmp_path, "[prod-pitr]\nref = pitrrestoredxxxxxxxx\nrestored_from = prd\n")


def test_a_restore_of_its_own_project_on_another_database_loads(tmp_path):
    loaded = load(
        tmp_path,
        "[local]\nref = localxxxxxxxxxxxxxxx\ndb_url = postgresql://postgres@127.0.0.1:5433/app\n"
        "[prod-pitr]\nrestored_from = prod\nref = pitrrestoredxxxxxxxx\n"
        "db_url = postgresql://postgres@127.0.0.1:5433/app_pitr\n",
    )
    assert loaded.environments["prod-pitr"].restored_from == "prod"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # env `prod` with ref `eu-x` and env `prod-eu` with ref `x` would share `prod-eu-x`: series, pool, lock
        ("[prod-eu]\nref = x\n[other]\nref = eu-x\n", "no project ref"),
        ("[staging]\nref = Staging Project\n", "no project ref"),
        ("[a-b]\nref = x\n[a_b]\nref = y\n", "OPS_A_B_*"),
        ("[Prod]\nref = x\n", "OPS_PROD_*"),
        ("[prod.eu]\nref = x\n", "letters, digits, - and _"),
        ("[prod+eu]\nref = x\n", "letters, digits, - and _"),
        ("[offsite.eu]\nstorage_url = http://127.0.0.1:9000\nbucket = b\n", "letters, digits, - and _"),
    ],
)
def test_names_that_would_share_secrets_or_a_backup_series_are_refused(tmp_path, text, message):
    with pytest.raises(UserError, match="rename|project ref|letters") as refused:
        load(tmp_path, text)
    assert message in str(refused.value)


def test_each_environment_has_a_series_folder_of_its_own(tmp_path):
    loaded = load(tmp_path, "[prod-eu]\nref = abc\n[eu]\nref = x\n[a-b-c]\n")
    folders = [loaded.env(name).folder for name in ("prod", "prod-eu", "eu", "a-b-c")]
    assert folders == ["prod-qfdztdgublwlmewobxmx", "prod-eu-abc", "eu-x", "a-b-c-"]
    assert len(set(folders)) == len(folders)


# A series of some buckets is `<name>-<ref>+<b1>+<b2>`: a bucket whose name holds `+` would share it.
@pytest.mark.parametrize(
    ("one", "other"),
    [(["a+b"], ["a", "b"]), (["a", "c+b"], ["a+c", "b"]), (["a+b", "c"], ["a", "b+c"])],
)
def test_two_selections_of_buckets_never_share_a_series(tmp_path, one, other):
    from ops.backup.store import some_buckets_folder

    folders = []
    for selection in (one, other):
        try:
            folders.append(some_buckets_folder(tmp_path / "prod-ref", selection))
        except UserError as refused:
            assert "+" in str(refused) and "\n" not in str(refused)
    assert len(set(folders)) == len(folders), folders


def test_a_bucket_whose_name_holds_a_slash_is_refused_as_a_selection_not_a_crash(tmp_path):
    from ops.backup.store import some_buckets_folder

    with pytest.raises(UserError, match="bucket"):
        some_buckets_folder(tmp_path / "prod-ref", ["a/../../b"])


# `<name>-<ref>` is a folder's name (the series, its pool, its lock): a file system holds 255 bytes of it.
@pytest.mark.parametrize("section", ["[" + "a" * 300 + "]\nref = abc\n", "[long]\nref = " + "a" * 300 + "\n"])
def test_a_name_or_ref_too_long_for_a_folder_is_refused_when_read(tmp_path, section):
    path = tmp_path / "environments.ini"
    path.write_text(section)
    with pytest.raises(UserError, match="long") as refused:
        config.load(path, check_refs=False)
    assert "\n" not in str(refused.value)


def test_a_settings_section_spelled_in_another_case_is_refused_not_read_as_an_environment(tmp_path):
    with pytest.raises(UserError, match=r"\[Storage\] is spelled \[storage\]"):
        load(tmp_path, "[Storage]\n")
