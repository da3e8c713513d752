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


def test_plain_progress_is_a_line_a_second_while_a_listing_feeds_the_work(capsys, monkeypatch):
    """Work that keeps up with a listing finishes all it knows of after each object: that is no reason
    for a line each time (a CI log of 100,000 lines), only the last one is."""
    from ops.report import PROGRESS, Meter

    monkeypatch.setattr(PROGRESS, "plain", True)
    with Meter("backed up", 0, "objects", 0) as meter:
        for _ in range(5000):
            meter.expect(1, 10)
            meter.add(1, 10)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) <= 3, lines[:5]
    assert lines[-1] == "backed up 5,000/5,000 objects, 0.0/0.0 MiB", lines[-1]
