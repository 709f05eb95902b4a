"""The battery: one `cnncourse grade --jobs 2` run over a class in which most students did something broken
or hostile (attacks.py). Every submission gets exactly the score and status it deserves, the run finishes,
nobody else's grade or files change, only notebooks come back, and nothing is left running or on disk."""
from __future__ import annotations

import pytest
from attacks import ESCAPE_MARK, EXPECTED
from helpers import (FULL, cell_scores, files_of, journal_entry, leftover_processes, leftover_scratch, scores,
                     summary_lines)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("graded_class")]  # graded once, on one worker


def test_run_completes_with_the_expected_statuses(graded_class):
    root, proc, _ = graded_class
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = summary_lines(proc.stdout)
    for student, (_, status, _, text) in EXPECTED.items():
        assert student in lines, f"{student} missing from the summary:\n{proc.stdout}"
        assert f" {status} " in lines[student] + " " and text in lines[student], (student, lines[student])


def test_every_submission_gets_exactly_the_score_it_deserves(graded_class):
    root, proc, _ = graded_class
    got = scores(root)
    assert set(got) == set(EXPECTED), proc.stdout
    wrong = {s: (got[s][0], want) for s, (want, *_) in EXPECTED.items() if got[s] != (want, FULL)}
    assert not wrong, f"(got, expected) per student: {wrong}\n{proc.stdout}"
    for student, (_, _, cells, _) in EXPECTED.items():
        if cells:
            assert cell_scores(root, student) == cells, student


def test_journal_records_status_score_and_per_test_results(graded_class):
    root, _, _ = graded_class
    for student, (score, status, _, _) in EXPECTED.items():
        entry = journal_entry(root, student)
        assert (entry["status"], entry["score"]) == (status, score), student
        assert (root / "autograded" / ".cnncourse-grade" / "tiny" / f"{student}.log").is_file(), student
    assert set(journal_entry(root, "good")["tests"]["tiny"]) == {"test_add", "test_square", "test_mean"}


def test_nobody_elses_files_change(graded_class):
    root, _, before = graded_class
    assert files_of(root / "submitted") == before
    assert (root / "solutions" / "tiny" / "tiny.ipynb").is_file()


def test_sandbox_showed_nothing_of_the_course(graded_class):
    root, _, _ = graded_class
    text = (root / "autograded" / "read_others" / "tiny" / "tiny.ipynb").read_text()
    assert "found: []" in text


def test_only_notebooks_come_back_and_outputs_are_capped(graded_class):
    root, _, _ = graded_class
    for student in ("disk_fill", "many_files", "disk_bomb"):
        assert sorted(p.name for p in (root / "autograded" / student / "tiny").iterdir()) == \
            ["timestamp.txt", "tiny.ipynb"], student
    fill = (root / "autograded" / "disk_fill" / "tiny" / "tiny.ipynb").read_text()
    assert "files written: 7" in fill or "files written: 8" in fill  # the 8 MB private /tmp is full
    for student, cap in (("huge_output", 3_000_000), ("many_outputs", 6_500_000)):
        nb_file = root / "autograded" / student / "tiny" / "tiny.ipynb"
        assert nb_file.stat().st_size < cap, student
        assert "output truncated by the grader" in nb_file.read_text(), student


def test_nothing_left_behind(graded_class):
    root, _, _ = graded_class
    assert leftover_processes(str(root)) == []
    assert leftover_processes(ESCAPE_MARK) == []
    assert leftover_scratch(root) == []


def test_rerun_skips_and_force_regrades_keeping_manual_comments(graded_class):
    from nbgrader.api import Gradebook

    from cnncourse.grader.limits import Limits
    from cnncourse.grader.scheduler import grade

    root, _, _ = graded_class
    before = scores(root)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:  # a grader's manual comment
        gb.find_comment("add", "tiny", "tiny", "good").manual_comment = "neat"
        gb.db.commit()
    results = grade(root, "tiny", jobs=2, progress=False)
    assert {r.status for r in results.values()} == {"skipped"}
    assert scores(root) == before
    results = grade(root, "tiny", students=["good", "blank"], jobs=2, force=True, progress=False,
                    limits=Limits(timeout_cell=10, memory_mb=1024))
    assert {s: r.status for s, r in results.items()} == {"good": "graded", "blank": "graded"}
    assert scores(root) == before
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        assert gb.find_comment("add", "tiny", "tiny", "good").manual_comment == "neat"
