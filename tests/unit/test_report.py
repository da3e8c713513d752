"""Output people read: tables that fit the terminal (no services)."""

from __future__ import annotations

from ops import report

HEADERS = ["env", "ref", "database"]
ROWS = [["prod", "qfdztdgublwlmewobxmx", "postgresql://postgres.qfdztdgublwlmewobxmx@aws-0-eu-central-1.pooler"]]


def test_a_table_wider_than_the_terminal_turns_vertical(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    shown = report.fitted(ROWS, HEADERS)
    assert max(len(line) for line in shown.splitlines()) <= 100  # the long value alone may pass the width
    assert "prod" in shown.splitlines()[0] and shown.splitlines()[1].startswith("ref ")
    assert "|" not in shown


def test_a_table_that_fits_stays_a_table(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert report.fitted(ROWS, HEADERS).startswith("| env")
