"""`cnncourse report` on a synthetic class built directly (report_class.py: 30 submissions from a reference
with injected mistakes, two planted near-copies, one honest look-alike): the report states the injected
numbers exactly, finds the copies and no others, writes a self-contained page and CSV files; `export` gains
per-test columns and the Canvas/Moodle formats; a 300-student report takes under 10 s."""
from __future__ import annotations

import csv
import re
import time
from collections import Counter

import numpy as np
import pytest
import report_class as rc
from cnncourse.cli import main
from cnncourse.grader import report
from cnncourse.grader.report import similarity

GRADED = {s: st for s, st in rc.CLASS.items() if st.status == "graded"}


def expected_label(hint: str | None) -> str:
    """The label written out for the hint's template in report_class.LABELS."""
    if hint is None:
        return "unrecognised"
    return next(label for t, label in rc.LABELS.items() if hint.startswith(t.split("{")[0][:20]))


def cli(capsys, root, *args: str) -> tuple[int, str, str]:
    """``cnncourse --root ROOT ARGS`` in this process (the grading tests run the real command line)."""
    capsys.readouterr()
    code = main(["--root", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = rc.build(tmp_path_factory.mktemp("report"))
    return root, report.build(root, rc.ASSIGNMENT)


def test_statuses_and_slowest(synthetic):
    _, r = synthetic
    statuses = Counter(st.status for st in rc.CLASS.values())
    assert r.statuses == {"graded": statuses["graded"], "timed out": statuses["timed out"],
                          "crashed": statuses["crashed"], "invalid": statuses["invalid notebook"],
                          "missing": statuses["missing"], "late": sum(st.late for st in rc.CLASS.values())}
    by_time = sorted((st for st in rc.CLASS.items() if st[1].seconds), key=lambda kv: (-kv[1].seconds, kv[0]))
    assert [s.student for s in r.slowest] == [s for s, _ in by_time[:10]]


def test_score_distribution_and_item_analysis(synthetic):
    _, r = synthetic
    points = np.array([[rc.points_of(st)[t] for t in rc.POINTS] for st in GRADED.values()])
    totals = points.sum(axis=1)
    s = r.distribution.summary
    assert s["n"] == len(GRADED) and s["mean"] == pytest.approx(totals.mean())
    assert (s["q1"], s["median"], s["q3"]) == pytest.approx(tuple(np.percentile(totals, [25, 50, 75])))
    order = ["test_out_size", "test_conv1d", "test_max_pool"]  # the notebook's order, not alphabetical
    assert [q.label for q in r.questions] == order
    for q in r.questions:
        j = list(rc.POINTS).index(q.label)
        assert q.difficulty == pytest.approx(points[:, j].mean() / rc.POINTS[q.label])
        assert q.discrimination == pytest.approx(np.corrcoef(points[:, j], totals - points[:, j])[0, 1])


def test_pass_rates_and_mistake_shares(synthetic):
    _, r = synthetic
    by_test = {t.label: t for t in r.tests}
    assert set(by_test) == set(rc.POINTS)
    for test in rc.POINTS:
        fails = [st.fails[test] for st in GRADED.values() if test in st.fails]
        t = by_test[test]
        assert (t.recorded, t.failed) == (len(GRADED), len(fails))
        assert dict(t.mistakes) == dict(Counter(expected_label(h) for h in fails)), test
    # one label for "your dx is 0.25 times" and "your dx is 4 times"
    assert by_test["test_max_pool"].mistakes == [(rc.LABELS[rc.SCALED], 3)]
    conv = by_test["test_conv1d"]
    line = (f"test_conv1d: {conv.failed / len(GRADED):.0%} fail; of those "
            f"{7 / conv.failed:.0%} {rc.LABELS[rc.FLIPPED]}, {3 / conv.failed:.0%} unrecognised")
    assert line in report.summary_text(r).splitlines()


def test_finds_the_planted_copies_and_no_others(synthetic):
    _, r = synthetic
    assert r.clusters == [["s07", "s19"]]
    (pair,) = r.pairs
    assert (pair.a, pair.b) == ("s07", "s19") and pair.score >= r.settings.threshold
    assert set(pair.functions) == {"conv1d/conv1d", "max_pool/max_pool"}  # not out_size: the usual answer
    assert "while pos + k <= len(x)" in pair.functions["conv1d/conv1d"][0]
    assert "while i + n <= len(x)" in pair.functions["conv1d/conv1d"][1]
    assert r.compared == len(rc.CLASS) - 2  # the missing student and the unreadable notebook have no code


def test_normalisation_ignores_names_comments_docstrings_and_starter():
    a = ('def f(x, w):\n    """Doc."""\n    out = []\n    for i in range(3):  # loop\n'
         "        out.append(x[i] * w)\n    return out")
    b = ('def f(p, q):\n    """Other words."""\n    res = []\n    # a comment\n    for j in range(3):\n'
         "        res.append(p[j] * q)\n    return res")
    c = a.replace("x[i] * w", "x[i] + w")
    assert similarity.fingerprint({"f": a}, {}, 5) == similarity.fingerprint({"f": b}, {}, 5)
    assert similarity.fingerprint({"f": a}, {}, 5) != similarity.fingerprint({"f": c}, {}, 5)
    starter = similarity.starter_statements({"f": 'def f(x, w):\n    out = []\n    ### BEGIN SOLUTION\n'
                                                 '    pass\n    ### END SOLUTION\n    return out'})
    full = similarity.fingerprint({"f": a}, {}, 2)["f/f"]
    without = similarity.fingerprint({"f": a}, starter, 2)["f/f"]
    assert without < full  # `out = []` and `return out` are the starter's
    assert similarity.tokens(similarity.functions(a)["f"][0][0]) == ["Assign", "N", "List"]


def test_threshold_changes_the_pairs(synthetic):
    root, r = synthetic
    score = r.pairs[0].score
    assert report.build(root, rc.ASSIGNMENT, settings=report.Settings(threshold=min(1.0, score + 0.01)),
                        with_figures=False).pairs == []
    with pytest.raises(ValueError, match="threshold must be in"):
        report.Settings(threshold=1.5)


def test_cli_writes_a_self_contained_page_and_csv(synthetic, tmp_path, capsys):
    root, r = synthetic
    code, out, err = cli(capsys, root, "report", rc.ASSIGNMENT, "--output", str(tmp_path))
    assert code == 0, out + err
    assert out.splitlines()[:-1] == report.summary_text(r).splitlines()
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page.lower() and not re.search(r"""(src|href)=["']https?:""", page)
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    assert "never an accusation" in page
    mistakes = list(csv.DictReader((tmp_path / "mistakes.csv").open()))
    assert {(m["test"], m["mistake"]): int(m["students"]) for m in mistakes} == {
        (t.label, name): n for t in r.tests for name, n in t.mistakes}
    pairs = list(csv.DictReader((tmp_path / "similar_pairs.csv").open()))
    assert [(p["student_a"], p["student_b"]) for p in pairs] == [("s07", "s19")]
    students = {row["student"]: row for row in csv.DictReader((tmp_path / "students.csv").open())}
    assert students["s01"]["test_conv1d:result"] == rc.LABELS[rc.FLIPPED]
    assert students["s31"]["status"] == "missing" and students["s23"]["status"] == "timed out"
    code, _, err = cli(capsys, root, "report", rc.ASSIGNMENT, "--similarity", "2")
    assert code == 1 and "--similarity" in err
    code, _, err = cli(capsys, root, "report", "nope")
    assert code == 1 and "no assignment 'nope'" in err
    code, _, err = cli(capsys, root, "report", rc.ASSIGNMENT, "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 1 and "no gradebook at" in err and not (tmp_path / "none.db").exists()


def test_export_per_test_columns_and_lms_formats(synthetic, tmp_path, capsys):
    root, _ = synthetic
    rows = {r["student"]: r for r in csv.DictReader(cli(capsys, root, "export", "-o", "-")[1].splitlines())}
    for s, st in GRADED.items():
        for test in rc.POINTS:
            got = rows[s][f"pools:{test}:result"], rows[s][f"pools:{test}:mistake"]
            assert got == (("failed", expected_label(st.fails[test])) if test in st.fails else ("passed", ""))
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,canvas_id,sis_user_id,sis_login_id,section,email,id_number\n" + "".join(
        f"{s},\"Name, {s}\",{1000 + i},S{i:04d},{s}@uni.example,A,{s}@uni.example,N{i:04d}\n"
        for i, s in enumerate(rc.CLASS)))
    canvas = list(csv.reader(cli(capsys, root, "export", "--format", "canvas", "--roster", str(roster), "-o",
                                 "-")[1].splitlines()))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "pools"]
    assert canvas[1] == ["Name, s01", "1000", "S0000", "s01@uni.example", "A", rows["s01"]["pools"]]
    moodle = list(csv.reader(cli(capsys, root, "export", "--format", "moodle", "--roster", str(roster), "-o",
                                 "-")[1].splitlines()))
    assert moodle[0] == ["ID number", "Email address", "pools"] and moodle[1][:2] == ["N0000", "s01@uni.example"]
    roster.write_text("student,name\ns01,Ada\n")
    code, _, err = cli(capsys, root, "export", "--format", "canvas", "--roster", str(roster), "-o", "-")
    assert code == 1 and "not in the roster: s02" in err


def test_report_of_300_students_under_10_s(tmp_path):
    root = rc.build(tmp_path / "big", students=rc.scaled(10))
    report.build(rc.build(tmp_path / "warm", students={"ada": rc.CLASS["s01"]}), rc.ASSIGNMENT)  # imports
    start = time.perf_counter()
    r = report.build(root, rc.ASSIGNMENT)
    report.write(r, tmp_path / "out")
    seconds = time.perf_counter() - start
    print(f"report of {len(r.data.submissions)} students: {seconds:.2f} s")
    assert len(r.data.submissions) == 310 and r.statuses["graded"] == 270
    assert seconds < 10, f"the report of 310 students took {seconds:.1f} s"


def test_an_assignment_nobody_submitted(tmp_path):
    root = rc.build(tmp_path, students={"ada": rc.Student("missing")})
    r = report.build(root, rc.ASSIGNMENT)
    report.write(r, tmp_path / "out")
    assert r.statuses["missing"] == 1 and r.distribution.summary == {"n": 0} and r.tests == [] and r.pairs == []
    assert "pools: 1 missing" in report.summary_text(r)
