"""The bad-submission battery: one `cnncourse grade --jobs 2` run over a class in which most students did
something nasty. Every submission must get the grade it deserves, the run must finish, nobody's grade may be
disturbed by somebody else's submission, and no process may be left behind."""
from __future__ import annotations

import json

import pytest
from conftest import ASSIGNMENT, EXPECTED, cell_scores, leftover_processes, scores

pytestmark = pytest.mark.slow


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

    from nbgrader.api import Gradebook

    root, _ = graded_class
    before = scores(root)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:  # a grader's manual comment
        gb.find_comment("add", ASSIGNMENT, ASSIGNMENT, "good").manual_comment = "neat"
        gb.db.commit()
    results = autograde.grade(root, ASSIGNMENT, jobs=2, progress=False)
    assert {r.status for r in results.values()} == {"skipped"}
    assert scores(root) == before
    results = autograde.grade(root, ASSIGNMENT, students=["good", "blank"], jobs=2, force=True, progress=False,
                              limits=autograde.Limits(timeout_cell=10, memory_mb=1024))
    assert {s: r.status for s, r in results.items()} == {"good": "graded", "blank": "graded"}
    assert scores(root) == before
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:  # kept through the regrade
        assert gb.find_comment("add", ASSIGNMENT, ASSIGNMENT, "good").manual_comment == "neat"
