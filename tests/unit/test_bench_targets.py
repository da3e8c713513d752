"""The bench's verdict on fabricated results: a missed target fails `nox -s bench`; each target is written once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.targets import TARGETS, result, verdict

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_line_at_its_target_exits_0(capsys):
    results = [result(name, name, target.most * 10, 10, "reference") for name, target in TARGETS.items()]
    assert verdict(results) == 0 and all(r["met"] for r in results)
    assert capsys.readouterr().err == ""


def test_one_line_over_its_target_exits_1_and_is_named(capsys):
    results = [
        result("inv --list", "inv --list", 1.2, 1.0, "a bare invoke task file"),
        result("sync-data fresh copy", "sync-data fresh copy, 100 rows", 1.01, 1.0, "pg_dump | psql"),
    ]
    assert verdict(results) == 1
    said = capsys.readouterr().err
    assert "MISSED 1. sync-data fresh copy, 100 rows" in said and "(target <= 1.0x)" in said
    assert "inv --list" not in said and "1 of 2 lines missed" in said


def test_a_condition_beyond_the_ratio_that_fails_misses_the_line():
    made = result("deploy-functions, some failing", "named []", 1.0, 1.0, "the CLI", also=False)
    assert made["target"] == "<= 1.5x and names both" and not made["met"]
    assert verdict([made]) == 1


def test_a_target_not_in_the_table_is_an_error():
    with pytest.raises(KeyError):
        result("sync-data, made up", "x", 1.0, 1.0, "y")


def test_the_bench_records_each_target_of_the_table_once():
    recorded = [
        ast.literal_eval(node.args[0])
        for path in BENCH.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"
    ]
    assert sorted(recorded) == sorted(TARGETS)
