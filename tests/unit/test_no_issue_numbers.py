"""Code and tests say why they are as they are, not which tracker entry asked for it.

An issue number means nothing to a reader without the tracker (and this repository has none),
so none is cited in ops/, tasks.py, tests/, bench/, devstack/ or noxfile.py.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CITED = re.compile(r"\bissues?\s*#?\d+|\(#\d+\)|\bgh-\d+", re.IGNORECASE)


def citations(text: str, name: str = "<text>") -> list[str]:
    return [
        f"{name}:{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if CITED.search(line)
    ]


def sources() -> list[Path]:
    files = [REPO / "tasks.py", REPO / "noxfile.py"]
    for folder in ("ops", "tests", "bench", "devstack"):
        files += sorted((REPO / folder).rglob("*.py"))
    return files


def test_no_issue_number_is_cited_in_code_or_tests():
    found = [
        hit for path in sources() for hit in citations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert found == [], "say why instead of citing an issue:\n" + "\n".join(found)


def test_citations_are_found_and_keys_with_a_hash_are_not():
    word = "iss" + "ue"  # spelled in two, so this test's own examples are not citations in its source
    assert citations(f"x = 1  # see {word} 18, item 5") == [f"<text>:1: x = 1  # see {word} 18, item 5"]
    assert len(citations(f'"""Plans first ({word.title()} #20)."""\nfixed in (' + "#12)")) == 2
    assert len(citations("a\nGH" + "-7 b")) == 1
    assert citations(f'key = "notes #1.txt"  # the {word} is the hash in a key') == []
