"""Plain connection URIs are read without libpq, exactly as libpq reads them."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from ops import conninfo

REPO = Path(__file__).resolve().parents[2]


def by_libpq(text: str) -> dict[str, str]:
    return {name: str(value) for name, value in conninfo_to_dict(text).items() if value is not None}


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://postgres.jtzcrirqflfnagceendt@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
        "postgresql://postgres@db.jtzcrirqflfnagceendt.supabase.co:5432/postgres",
        "postgres://postgres@db.jtzcrirqflfnagceendt.supabase.co/postgres?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        "postgresql://app@127.0.0.1:54322/postgres?connect_timeout=5&application_name=ops",
        "postgresql://u@h",
        "postgresql://u@h:5/",
    ],
)
def test_plain_uris_read_as_libpq_reads_them(text):
    assert conninfo.read_plain(text) is not None
    assert conninfo.read_plain(text) == by_libpq(text)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://u:hunter2@h/db",  # a password in the user info
        "postgresql://u@h/db?password=hunter2",
        "postgresql://u@h/db?sslpassword=hunter2",
        "postgresql://u@h/db?pass%77ord=hunter2",  # libpq decodes parameter names too
        "postgresql://u@h/db?user=other",  # a second user: libpq's last one wins
        "postgresql://u@h/db?host=other",
        "postgresql://u@[::1]:5432/db",
        "host=h user=u dbname=db",
    ],
)
def test_anything_else_goes_to_libpq(text):
    assert conninfo.read_plain(text) is None
    assert conninfo.parse(text) == by_libpq(text)


def test_random_strings_the_plain_reader_accepts_read_the_same_in_libpq():
    rng = random.Random(13)
    junk = ["", "%40", "%", ":", "@", "/", "?", "&", "=", "[", "]", " ", "'", "password", "user=x", "host=y"]

    def some(*choices: str) -> str:
        return rng.choice(choices) + (rng.choice(junk) if rng.random() < 0.05 else "")

    accepted = 0
    for _ in range(40000):
        query = "&".join(
            some(
                "sslmode=require",
                "connect_timeout=10",
                "application_name=a.b",
                "user=v",
                "password=p",
                "sslmode",
                "port=1",
                "sslmode=",
            )
            for _ in range(rng.randint(0, 3))
        )
        text = (
            some("postgresql://", "postgres://", "postgresql:/", "")
            + some("u", "postgres.ref", "", "u:p")
            + some("@", "")
            + some("h", "db.ref.supabase.co", "127.0.0.1", "")
            + some("", ":5432", ":", ":x")
            + some("", "/", "/postgres", "/d-b.c")
            + (("?" + query) if rng.random() < 0.6 else "")
        )
        plain = conninfo.read_plain(text)
        if plain is None:
            continue
        accepted += 1
        assert plain == by_libpq(text), text
    assert accepted > 500  # the comparison above ran on enough strings to mean something


def test_an_invalid_string_is_refused():
    with pytest.raises(conninfo.InvalidConninfo):
        conninfo.parse("host=h port")


def test_loading_plain_hosted_urls_does_not_load_libpq(tmp_path):
    """Importing psycopg costs each task about 70 ms; storage and deploy tasks never connect."""
    ini = tmp_path / "environments.ini"
    ini.write_text(
        textwrap.dedent("""\
        [prod]
        ref = jtzcrirqflfnagceendt
        db_url = postgresql://postgres.jtzcrirqflfnagceendt@aws-0-eu-central-1.pooler.supabase.com:5432/postgres
        storage_url = https://jtzcrirqflfnagceendt.storage.supabase.co/storage/v1/s3

        [preprod]
        ref = cezlnvdjildzxpyxyabb
        db_url = postgresql://postgres@db.cezlnvdjildzxpyxyabb.supabase.co:5432/postgres?sslmode=verify-full
        """)
    )
    code = f"import sys; from ops import config; config.load({str(ini)!r}); print('psycopg' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
