"""The class report end to end: a small class graded for real by `cnncourse grade` (the per-test results and
hints reach the journal, the report and the export), and the synthetic class on PostgreSQL reporting what
it reports on SQLite."""
from __future__ import annotations

import csv

import pytest
import report_class as rc
from helpers import ANSWERS_OK, answered, journal_entry, make_course, run_cli, submit
from test_postgres import postgres  # noqa: F401 (the session's throwaway PostgreSQL cluster)

from cnncourse.grader import report

pytestmark = pytest.mark.slow

HINT = "the kernel is flipped: 3 of 3 outputs match the flipped kernel"
LABEL = "the kernel is flipped: # of # outputs match the flipped kernel"  # the numbers vary between students
SUBMISSIONS = {  # student -> answers; a raised message with "Likely cause:" is what a hint-giving test writes
    "good": ANSWERS_OK,
    "hinted": dict(ANSWERS_OK, add=f'def add(a, b):\n    raise AssertionError("add is wrong\\nLikely cause: {HINT}")'),
    "plain": dict(ANSWERS_OK, add="def add(a, b):\n    return a - b", mean="def mean(xs):\n    return 0"),
}


def test_graded_class_report_and_export(tmp_path):
    root, released = make_course(tmp_path)
    for student, answers in SUBMISSIONS.items():
        submit(root, student, answered(released, answers))
    graded = run_cli(root, "grade", "tiny", "--jobs", "2", "--no-progress", timeout=600)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    entry = journal_entry(root, "hinted")["tests"]["tiny"]
    assert entry["test_add"] == {"passed": False, "message": f"AssertionError: add is wrong\nLikely cause: {HINT}",
                                 "hint": HINT}
    assert journal_entry(root, "good")["tests"]["tiny"]["test_mean"]["passed"] is True

    proc = run_cli(root, "report", "tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = report.build(root, "tiny", with_figures=False)
    tests = {t.label: t for t in r.tests}
    assert (tests["test_add"].recorded, tests["test_add"].failed) == (3, 2)
    assert tests["test_add"].mistakes == [(LABEL, 1), ("unrecognised", 1)]
    assert (tests["test_mean"].failed, tests["test_square"].failed) == (1, 0)
    assert r.statuses["graded"] == 3 and r.pairs == []
    assert f"test_add: 67% fail; of those 50% {LABEL}, 50% unrecognised" in proc.stdout
    assert (root / "reports" / "tiny" / "report.html").is_file()

    rows = {row["student"]: row for row in csv.DictReader(run_cli(root, "export", "-o", "-").stdout.splitlines())}
    assert (rows["hinted"]["tiny:test_add:result"], rows["hinted"]["tiny:test_add:mistake"]) == ("failed", LABEL)
    assert rows["plain"]["tiny:test_add:mistake"] == "unrecognised" and rows["good"]["tiny:test_add:result"] == "passed"


@pytest.mark.xdist_group("postgres")  # on the worker that runs test_postgres, with its cluster
def test_postgresql_gradebook_gives_the_same_report(postgres, tmp_path):  # noqa: F811
    lite = report.build(rc.build(tmp_path / "lite"), rc.ASSIGNMENT, with_figures=False)
    url = postgres.create_database("report_class")
    pg_root = rc.build(tmp_path / "pg", db_url=url)
    assert not (pg_root / "gradebook.db").exists()
    pg = report.build(pg_root, rc.ASSIGNMENT, db_url=url, with_figures=False)
    assert pg.statuses == lite.statuses and pg.tests == lite.tests and pg.questions == lite.questions
    assert pg.distribution.summary == lite.distribution.summary
    assert [(p.a, p.b, p.score) for p in pg.pairs] == [(p.a, p.b, p.score) for p in lite.pairs]
    proc = run_cli(pg_root, "report", rc.ASSIGNMENT, "--db", url, "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[:-1] == report.summary_text(lite).splitlines()
