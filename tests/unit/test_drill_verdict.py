"""The drill's verdict line and who may be a drill's target (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import config
from ops.backup.drill import DrillResult, duration, scratch_env, shared_project, size
from ops.config import Environment, session_pooler_url
from ops.errors import UserError

ENVS = """
[prod]
ref = qfdztdgublwlmewobxmx
db_url = postgresql://postgres@127.0.0.1:5432/prod
protected = true
[preprod]
ref = jtzcrirqflfnagceendt
db_url = postgresql://postgres@127.0.0.1:5432/preprod
[spare]
ref = spareprojectref00001
db_url = postgresql://postgres@127.0.0.1:5432/spare
scratch = true
"""


def load(tmp_path: Path, extra: str = "") -> config.Config:
    path = tmp_path / "environments.ini"
    path.write_text(ENVS + extra)
    return config.load(path)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59.6, "1m00s"), (372, "6m12s"), (3725, "1h02m05s")],
    ids=["under-a-second", "rounds-up-to-a-minute", "minutes", "hours"],
)
def test_duration(seconds, shown):
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(900, "900 B"), (24582, "24.0 KiB"), (3 * 2**30 + 2**29, "3.5 GiB")],
    ids=["bytes", "kib", "gib"],
)
def test_size(count, shown):
    assert size(count) == shown


def test_the_verdict_names_ten_differences_and_counts_the_rest():
    result = DrillResult("prod", "offsite:2026-12-06T02-17-00Z", "spare", tables=46, row_count=182_311)
    result.objects, result.bytes, result.seconds = 10_245, int(3.1 * 2**30), 372
    assert result.verdict() == (
        "DRILL OK: 46 tables, 182,311 rows, 10,245 objects (3.1 GiB) restored and checked in 6m12s"
    )
    assert result.failure() is None
    result.differences = [f"table public.t{n}: 1 rows, the backup recorded 2" for n in range(12)]
    verdict = result.verdict()
    assert verdict.startswith("DRILL FAILED: table public.t0: 1 rows") and "public.t9:" in verdict
    assert "public.t10" not in verdict and "; and 2 more (above)" in verdict
    assert result.footer().count("public.t11") == 1, "every difference is listed above the verdict"
    assert result.failure() is not None and result.to_dict()["ok"] is False


def test_only_a_scratch_environment_other_than_the_source_may_be_drilled_into(tmp_path):
    loaded = load(tmp_path)
    prod = loaded.env("prod")
    assert scratch_env(loaded, "spare", prod).name == "spare"
    with pytest.raises(UserError, match="'preprod' is not a scratch environment.*spare"):
        scratch_env(loaded, "preprod", prod)
    with pytest.raises(UserError, match="--into ENV"):
        scratch_env(loaded, None, prod)
    with pytest.raises(UserError, match="both 'spare'"):
        scratch_env(loaded, "spare", loaded.env("spare"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[qa]\nref = qaprojectref0000001\nscratch = true\nprotected = true\n", "both scratch"),
        ("[qa]\nref = qaprojectref0000001\nscratch = maybe\n", r"\[qa\] scratch must be true or false"),
        ("[backup]\ndrill_max_age_days = 0\n", "drill_max_age_days must be a whole number of 1 or more"),
        ("[backup]\ndrill_max_age_days = a week\n", "drill_max_age_days must be a whole number"),
    ],
    ids=["scratch-and-protected", "not-a-boolean", "zero-days", "not-a-number"],
)
def test_scratch_and_drill_age_settings_are_checked(tmp_path, extra, message):
    with pytest.raises(UserError, match=message):
        load(tmp_path, extra)


def test_drill_age_defaults_to_a_week_and_a_day(tmp_path):
    assert load(tmp_path).backup.drill_max_age_days == 8
    assert load(tmp_path, "[backup]\ndrill_max_age_days = 14\n").backup.drill_max_age_days == 14


def hosted(name: str, ref: str) -> Environment:
    return Environment(
        name,
        ref=ref,
        db_url=session_pooler_url(ref, "eu-central-1"),
        storage_url=f"https://{ref}.storage.supabase.co/storage/v1/s3",
    )


def test_two_hosted_projects_are_told_apart_by_name_not_by_their_shared_addresses():
    assert shared_project(hosted("scratch", "a" * 20), hosted("prod", "b" * 20)) == ""


@pytest.mark.parametrize(
    ("scratch", "same"),
    [
        (hosted("scratch", "b" * 20), "the ref"),
        (
            Environment(
                "scratch",
                ref="c" * 20,
                storage_url="HTTPS://BBBBBBBBBBBBBBBBBBBB.storage.supabase.co:443/storage/v1/s3/",
            ),
            "a storage_url",
        ),
        (Environment("scratch", ref="c" * 20, db_url=session_pooler_url("b" * 20, "eu-central-1")), "a db_url"),
    ],
    ids=["ref", "storage_url-spelled-otherwise", "pooler-db_url"],
)
def test_a_section_sharing_prods_ref_storage_or_database_is_prod(scratch, same):
    assert shared_project(scratch, hosted("prod", "b" * 20)).startswith(same)
