"""One line per failure, from errors.first_line: the one formatter every report uses (no services)."""

from __future__ import annotations

import pytest

from ops.errors import MAX_LINE, UserError, first_line
from ops.s3.base import S3Error


@pytest.mark.parametrize(
    "error, plain, typed",
    [
        (KeyError("nme"), "'nme'", "KeyError: 'nme'"),
        (ValueError(""), "ValueError", "ValueError"),
        (OSError("refused\nsecond line"), "refused", "OSError: refused"),
        (
            UserError("--jobs takes a whole number"),
            "--jobs takes a whole number",
            "UserError: --jobs takes a whole number",
        ),
        (
            S3Error(400, "InvalidKey", "Invalid key: a#b", "PutObject", "prod storage"),
            "prod storage: PutObject answered 400 InvalidKey: Invalid key: a#b",
            "400 InvalidKey: Invalid key: a#b",
        ),
    ],
    ids=["foreign", "no-text", "multi-line", "ours", "s3-answer"],
)
def test_one_line_for_each_kind_of_error(error, plain, typed):
    assert first_line(error) == plain
    assert first_line(error, typed=True) == typed


def test_a_huge_message_is_cut_to_one_short_line():
    line = first_line(RuntimeError("x" * 10_000), typed=True)
    assert line.startswith("RuntimeError: xxx") and line.endswith("...") and len(line) < MAX_LINE + 30
