"""The bad-submission battery: one `cnncourse grade --jobs 2` run over a class in which most students did
something nasty. Every submission must get the grade it deserves, the run must finish, nobody's grade may be
disturbed by somebody else's submission, and no process may be left behind."""
from __future__ import annotations

import json

import nbformat
import pytest
from conftest import (ANSWERS_OK, ASSIGNMENT, MEAN_OK, SQUARE_OK, answered, cell_by_id, cell_scores,
                      leftover_processes, run_cli, scores, submit)

pytestmark = pytest.mark.slow

FORK_BOMB = """\
import os, time
for _ in range(300):            # bounded on purpose: the grader must stop it long before
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
"""
MONKEYPATCH = """\
import numpy.testing, numpy as np
numpy.testing.assert_allclose = lambda *args, **kwargs: None     # every visible check now passes
np.testing.assert_allclose = numpy.testing.assert_allclose
def square(x):
    return np.asarray(x) * 2                                       # wrong
"""

# student -> (expected score, expected status, per-cell expectations or None)
EXPECTED = {
    "good": (6, "graded", None),
    "blank": (0, "graded", None),
    "raises": (0, "graded", None),
    "loop": (4, "timed out", {"test_add": 0, "test_square": 3, "test_mean": 1}),
    "slow": (5, "timed out", {"test_add": 2, "test_square": 3, "test_mean": 0}),
    "memory": (3, "graded", {"test_add": 2, "test_square": 0, "test_mean": 1}),
    "osexit": (2, "crashed", {"test_add": 2, "test_square": 0, "test_mean": 0}),
    "sysexit": (5, "graded", {"test_add": 2, "test_square": 3, "test_mean": 0}),
    "deleted_tests": (6, "graded", None),
    "edited_tests": (4, "graded", {"test_add": 0, "test_square": 3, "test_mean": 1}),
    "monkeypatch": (3, "graded", {"test_add": 2, "test_square": 0, "test_mean": 1}),
    "corrupted": (0, "invalid notebook", None),
    "renamed": (6, "graded", None),
    "missing": (0, "missing notebook", None),
    "huge_output": (6, "graded", None),
    "fork_bomb": (2, "crashed", {"test_add": 2, "test_square": 0, "test_mean": 0}),
}


def build_class(root, released):
    ok = answered(released, ANSWERS_OK)
    submit(root, "good", ok)
    submit(root, "blank", released)

    nb = answered(released, {k: "raise RuntimeError('boom')" for k in ANSWERS_OK})
    for cell in nb.cells:  # every cell raises, the locked/test ones too (nbgrader restores those)
        if cell.cell_type == "code":
            cell.source = "raise RuntimeError('boom')\n" + cell.source
    nb.cells.insert(0, nbformat.v4.new_code_cell("raise RuntimeError('first')"))
    submit(root, "raises", nb)

    submit(root, "loop", answered(released, {**ANSWERS_OK, "add": "while True:\n    pass"}))
    submit(root, "slow", answered(released, {**ANSWERS_OK, "square": "time.sleep(5)\n" + SQUARE_OK,
                                             "mean": "time.sleep(60)\n" + MEAN_OK}))
    submit(root, "memory", answered(released, {
        **ANSWERS_OK, "square": "_hog = []\nwhile True:\n    _hog.append(bytes(64 * 1024 * 1024))\n" + SQUARE_OK}))
    submit(root, "osexit", answered(released, {**ANSWERS_OK, "square": "import os\nos._exit(1)"}))
    submit(root, "sysexit", answered(released, {**ANSWERS_OK, "mean": "import sys\nsys.exit(3)"}))

    nb = answered(released, ANSWERS_OK)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in
                ("test_add", "test_square", "setup")]
    submit(root, "deleted_tests", nb)

    nb = answered(released, {**ANSWERS_OK, "add": "def add(a, b):\n    return a - b"})
    cell_by_id(nb, "test_add").source = "pass  # tests? what tests?"
    submit(root, "edited_tests", nb)

    submit(root, "monkeypatch", answered(released, {**ANSWERS_OK, "square": MONKEYPATCH}))
    text = nbformat.writes(ok)
    submit(root, "corrupted", raw=text[: len(text) // 2])
    submit(root, "renamed", ok, name=f"{ASSIGNMENT}-Copy1.ipynb")
    (submit(root, "missing") / "notes.txt").write_text("I could not make it work")
    submit(root, "huge_output", answered(released, {**ANSWERS_OK, "mean": "print('x' * (50 * 1024 * 1024))\n"
                                                                         + MEAN_OK}))
    submit(root, "fork_bomb", answered(released, {**ANSWERS_OK, "square": FORK_BOMB}))


@pytest.fixture(scope="session")
def graded_class(tiny_course):
    root, released = tiny_course
    build_class(root, released)
    proc = run_cli(root, "grade", ASSIGNMENT, "--jobs", "2", "--timeout-cell", "6", "--timeout-notebook", "10",
                   "--memory", "1024", "--max-procs", "32", "--no-progress")
    return root, proc


def test_run_completes_with_a_summary(graded_class):
    root, proc = graded_class
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for student, (_, status, _) in EXPECTED.items():
        assert any(line.startswith(student + " ") and status in line for line in proc.stdout.splitlines()), (
            f"{student}: expected status {status!r} in the summary:\n{proc.stdout}")


def test_every_submission_gets_the_grade_it_deserves(graded_class):
    root, proc = graded_class
    got = scores(root)
    assert set(got) == set(EXPECTED), proc.stdout
    wrong = {s: (got[s][0], want) for s, (want, _, _) in EXPECTED.items() if got[s] != (want, 6)}
    assert not wrong, f"(got, expected) per student: {wrong}\n{proc.stdout}"
    for student, (_, _, cells) in EXPECTED.items():
        if cells:
            assert cell_scores(root, student) == cells, student


def test_journal_statuses(graded_class):
    root, _ = graded_class
    for student, (score, status, _) in EXPECTED.items():
        entry = json.loads((root / "autograded" / ".cnncourse-grade" / ASSIGNMENT / f"{student}.json").read_text())
        assert (entry["status"], entry["score"]) == (status, score), student


def test_limits_are_explained(graded_class):
    root, proc = graded_class
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "cell time limit (6 s)" in lines["loop"]
    assert "notebook time limit" in lines["slow"]
    assert "process limit (32)" in lines["fork_bomb"]
    assert "kernel died" in lines["osexit"]
    assert "renamed" in lines["renamed"]
    assert "restored deleted cells" in lines["deleted_tests"]


def test_huge_output_is_capped(graded_class):
    root, _ = graded_class
    nb_file = root / "autograded" / "huge_output" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert nb_file.stat().st_size < 3_000_000
    assert "output truncated by the grader" in nb_file.read_text()


def test_no_processes_left_behind(graded_class):
    root, _ = graded_class
    assert leftover_processes(str(root)) == []


def test_rerun_skips_and_force_regrades_one(graded_class):
    from cnncourse import autograde

    root, _ = graded_class
    before = scores(root)
    results = autograde.grade(root, ASSIGNMENT, jobs=2, progress=False)
    assert {r.status for r in results.values()} == {"skipped"}
    assert scores(root) == before
    results = autograde.grade(root, ASSIGNMENT, students=["good", "blank"], jobs=2, force=True, progress=False,
                              limits=autograde.Limits(timeout_cell=10, memory_mb=1024))
    assert {s: r.status for s, r in results.items()} == {"good": "graded", "blank": "graded"}
    assert scores(root) == before
