"""`cnncourse feedback` never shows hidden tests; `cnncourse export` matches the gradebook (on the battery's
graded class)."""
from __future__ import annotations

import csv
import html
import re

import pytest
from conftest import ASSIGNMENT, EXPECTED, HIDDEN_LINES, run_cli

pytestmark = pytest.mark.slow

SHOWN = ("good", "monkeypatch", "edited_tests", "blank", "osexit")


def plain(page: str) -> str:
    """The text a reader sees (code is split into highlighting spans in the HTML)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_has_no_hidden_tests(graded_class):
    root, _ = graded_class
    proc = run_cli(root, "feedback", ASSIGNMENT, *[f"--student={s}" for s in SHOWN])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {p.parts[-3]: p for p in (root / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    assert set(files) == set(SHOWN)
    for student, path in files.items():
        raw = path.read_text()
        text = plain(raw)
        for line in HIDDEN_LINES:
            for form in {line, html.escape(line), html.escape(line, quote=False)}:
                assert form not in raw and line not in text, f"{student}'s feedback shows hidden test text: {line!r}"
        assert "hidden tests: not shown" in text
        assert 'assert add(1, 2) == 3, "add(1, 2) should be 3"' in text  # the visible tests are there
    cheat = plain(files["monkeypatch"].read_text())
    assert "return np.asarray(x) * 2" in cheat  # the student's own code
    assert "AssertionError: hidden square(X): expected 1.0, got 2.0" in cheat  # the message, not the source
    assert "Score: 3.0 / 6.0" in " ".join(cheat.split()) or "3.0 / 6.0" in cheat


def test_export_matches_gradebook(graded_class, tmp_path):
    from nbgrader.api import Gradebook

    root, _ = graded_class
    out = tmp_path / "grades.csv"
    proc = run_cli(root, "export", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(EXPECTED)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        for student in EXPECTED:
            sub = gb.find_submission(ASSIGNMENT, student)
            assert float(rows[student][ASSIGNMENT]) == sub.score
            grades = [g for nb in sub.notebooks for g in nb.grades]
            assert len(grades) == 3
            for g in grades:
                assert float(rows[student][f"{ASSIGNMENT}:{g.name}"]) == g.score, (student, g.name)
    assert {s: float(r[ASSIGNMENT]) for s, r in rows.items()} == {s: e[0] for s, e in EXPECTED.items()}
