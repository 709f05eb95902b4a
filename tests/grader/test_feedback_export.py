"""`cnncourse feedback` never shows hidden tests and goes on past a damaged notebook; `cnncourse export`
matches the gradebook (on the battery's graded class)."""
from __future__ import annotations

import csv
import html
import re
import shutil

import pytest
from attacks import EXPECTED
from helpers import HIDDEN_LINES, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("graded_class")]  # graded once, on one worker

SHOWN = ("good", "edited_tests", "blank", "osexit", "hooks")


def plain(page: str) -> str:
    """The text a reader sees (code is split into highlighting spans in the HTML)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_has_no_hidden_tests(graded_class):
    root, _, _ = graded_class
    proc = run_cli(root, "feedback", "tiny", *[f"--student={s}" for s in SHOWN])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {p.parts[-3]: p for p in (root / "feedback").glob("*/tiny/tiny.html")}
    assert set(files) == set(SHOWN)
    for student, path in files.items():
        raw, text = path.read_text(), plain(path.read_text())
        for line in HIDDEN_LINES:
            assert line not in text and html.escape(line) not in raw, f"{student}'s feedback shows {line!r}"
        assert 'assert add(1, 2) == 3, "add(1, 2) should be 3"' in text  # the visible tests are there
    assert "return 0" in plain(files["hooks"].read_text())  # the student's own code


def test_feedback_goes_on_past_a_damaged_notebook(graded_class):
    root, _, _ = graded_class
    damaged = root / "autograded" / "good2" / "tiny" / "tiny.ipynb"
    keep = damaged.read_bytes()
    damaged.write_text('{"cells": [ oops')
    try:
        proc = run_cli(root, "feedback", "tiny", "--student=good2", "--student=blank")
    finally:
        damaged.write_bytes(keep)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "problem: good2: no feedback" in proc.stderr
    assert "1 feedback file(s)" in proc.stdout and "1 student(s) without feedback" in proc.stdout
    assert (root / "feedback" / "blank" / "tiny" / "tiny.html").is_file()
    shutil.rmtree(root / "feedback" / "good2", ignore_errors=True)


def test_export_matches_gradebook(graded_class, tmp_path):
    from nbgrader.api import Gradebook

    root, _, _ = graded_class
    out = tmp_path / "grades.csv"
    proc = run_cli(root, "export", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(EXPECTED)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        for student in EXPECTED:
            sub = gb.find_submission("tiny", student)
            assert float(rows[student]["tiny"]) == sub.score
            for g in [g for nb in sub.notebooks for g in nb.grades]:
                assert float(rows[student][f"tiny:{g.name}"]) == g.score, (student, g.name)
    assert {s: float(r["tiny"]) for s, r in rows.items()} == {s: e[0] for s, e in EXPECTED.items()}
