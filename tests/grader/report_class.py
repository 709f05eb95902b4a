"""A synthetic graded class for the class-report tests, built directly (no kernel runs): a source notebook
(``pools``: out_size, conv1d, max_pool, each with a test cell), submitted notebooks made from the reference
with injected mistakes, the gradebook (nbgrader's API, any SQLAlchemy URL) and the grading journal entries
exactly as ``cnncourse grade`` writes them. ``CLASS`` is the specification the tests derive their expected
numbers from."""
from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from helpers import ROOT, nbgrader_meta

ASSIGNMENT = "pools"
DUE = datetime.datetime(2026, 11, 20, 12, 0, 0)
SOLUTIONS = {
    "out_size": ('def out_size(H, K, stride, pad):\n    """Output size of a convolution."""\n'
                 "    ### BEGIN SOLUTION\n    return (H + 2 * pad - K) // stride + 1\n    ### END SOLUTION"),
    "conv1d": ('def conv1d(x, w, stride=1):\n    """Valid 1-D cross-correlation of x with w."""\n    out = []\n'
               "    ### BEGIN SOLUTION\n    n = (len(x) - len(w)) // stride + 1\n    for i in range(n):\n"
               "        window = x[i * stride:i * stride + len(w)]\n        out.append(float(np.dot(window, w)))\n"
               "    ### END SOLUTION\n    return np.array(out)"),
    "max_pool": ('def max_pool(x, size):\n    """Non-overlapping 1-D max pooling."""\n    ### BEGIN SOLUTION\n'
                 "    n = len(x) // size\n    return np.array([x[i * size:(i + 1) * size].max() for i in range(n)])\n"
                 "    ### END SOLUTION"),
}
POINTS = {"test_out_size": 2.0, "test_conv1d": 3.0, "test_max_pool": 2.0}
TEST_OF = {"out_size": "test_out_size", "conv1d": "test_conv1d", "max_pool": "test_max_pool"}

# Hints as the recognisers write them (numbers vary; the report groups them into one mistake).
STRIDE = "the output size ignores the stride: H_out = (H + 2*pad - HH) // stride + 1"
FLIPPED = "the kernel is flipped: you computed a convolution; the layer is a cross-correlation (no w[::-1])"
SCALED = "your dx is {r} times the right one: each input of a window receives the gradient once"

# The mistake label the report should give each (first sentence, numbers as '#'), written out by hand.
LABELS = {STRIDE: "the output size ignores the stride: H_out = (H + #*pad - HH) // stride + #",
          FLIPPED: "the kernel is flipped: you computed a convolution",
          SCALED: "your dx is # times the right one: each input of a window receives the gradient once"}

# Mutations of the reference (old -> new) that go with each mistake.
MUTATIONS = {STRIDE: ("out_size", "// stride + 1", "+ 1"), FLIPPED: ("conv1d", "np.dot(window, w)",
                                                                    "np.dot(window, w[::-1])"),
             SCALED: ("max_pool", ".max() for", ".max() / size for")}

ORIGINAL = {  # a distinctive solution (student s07) ...
    "conv1d": ('def conv1d(x, w, stride=1):\n    """Valid 1-D cross-correlation of x with w."""\n    out = []\n'
               "    # slide the filter by hand\n    k = len(w)\n    pos = 0\n    while pos + k <= len(x):\n"
               "        acc = 0.0\n        for j in range(k):\n            acc += x[pos + j] * w[j]\n"
               "        out.append(acc)\n        pos += stride\n    return np.array(out)"),
    "max_pool": ('def max_pool(x, size):\n    """Non-overlapping 1-D max pooling."""\n    best = []\n'
                 "    for start in range(0, len(x) - size + 1, size):\n        m = x[start]\n"
                 "        for v in x[start + 1:start + size]:\n            if v > m:\n                m = v\n"
                 "        best.append(m)\n    return np.array(best)"),
}
COPY = {  # ... and its near-copy (s19): names, comments and a docstring changed, one constant different
    "conv1d": ('def conv1d(x, w, stride=1):\n    """My own convolution, written from scratch."""\n    out = []\n'
               "    n = len(w)  # filter width\n    i = 0\n    while i + n <= len(x):\n        total = 0\n"
               "        for t in range(n):\n            total += x[i + t] * w[t]  # multiply-add\n"
               "        out.append(total)\n        i += stride\n    return np.array(out)"),
    "max_pool": ('def max_pool(x, size):\n    """Non-overlapping 1-D max pooling."""\n    result = []\n'
                 "    for s in range(0, len(x) - size + 1, size):\n        biggest = x[s]\n"
                 "        for value in x[s + 1:s + size]:\n            if value > biggest:\n"
                 "                biggest = value\n        result.append(biggest)\n    return np.array(result)"),
}
LOOKALIKE = {  # an honest while-loop version (s11): shares ideas with s07, not its code
    "conv1d": ('def conv1d(x, w, stride=1):\n    """Valid 1-D cross-correlation of x with w."""\n    out = []\n'
               "    start = 0\n    while start <= len(x) - len(w):\n"
               "        out.append(float(np.sum(x[start:start + len(w)] * w)))\n        start = start + stride\n"
               "    return np.array(out)"),
}


@dataclass
class Student:
    """One student of the synthetic class: status, failing tests with their hint (None: unrecognised),
    code (``{function: source}`` overrides of the reference), lateness and grading time."""

    status: str = "graded"
    fails: dict[str, str | None] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    late: bool = False
    seconds: float = 5.0


def _class() -> dict[str, Student]:
    c = {f"s{i:02d}": Student(seconds=4.0 + i / 10) for i in range(1, 31)}
    for s in ("s01", "s02", "s03", "s04", "s05"):
        c[s].fails["test_out_size"] = STRIDE
    for s in ("s06", "s08"):
        c[s].fails["test_out_size"] = None
    for s in ("s09", "s10", "s12", "s13", "s14", "s15"):
        c[s].fails["test_conv1d"] = FLIPPED
    for s in ("s16", "s17", "s18"):
        c[s].fails["test_conv1d"] = None
    for s, r in (("s20", "0.25"), ("s21", "0.25"), ("s22", "4")):
        c[s].fails["test_max_pool"] = SCALED.format(r=r)
    c["s01"].fails["test_conv1d"] = FLIPPED  # two mistakes at once
    c["s07"].code, c["s19"].code, c["s11"].code = dict(ORIGINAL), dict(COPY), dict(LOOKALIKE)
    c["s23"], c["s24"], c["s25"] = Student("timed out", seconds=61.0), Student("crashed", seconds=2.0), \
        Student("invalid notebook", seconds=0.5)
    c["s26"].late = c["s27"].late = True
    c["s31"] = Student("missing", seconds=0.0)  # on the roster, nothing submitted
    return c


CLASS = _class()



def notebook(code: dict[str, str]) -> nbformat.NotebookNode:
    """The assignment's notebook with the given solution cells (the source notebook for SOLUTIONS)."""
    v4 = nbformat.v4
    cells = [v4.new_markdown_cell("# Pools"), v4.new_code_cell("import numpy as np", metadata=nbgrader_meta(
        "setup", locked=True))]
    for name, test in TEST_OF.items():
        cells.append(v4.new_code_cell(code[name], metadata=nbgrader_meta(name, solution=True)))
        cells.append(v4.new_code_cell(f"assert {name} is not None", metadata=nbgrader_meta(test, grade=True, locked=True,
                                                                                 points=POINTS[test])))
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def student_code(st: Student) -> dict[str, str]:
    """The student's solution cells: the reference with the markers removed, the mutations of their
    recognised mistakes applied, and their own code where they have some."""
    code = {n: "\n".join(line for line in src.splitlines() if "### " not in line) for n, src in SOLUTIONS.items()}
    for hint in st.fails.values():
        for mistake, (fn, old, new) in MUTATIONS.items():
            if hint and hint.startswith(mistake.split("{")[0].split(":")[0]):
                code[fn] = code[fn].replace(old, new)
    code.update(st.code)
    return code


def build(where: Path, db_url: str | None = None, students: dict[str, Student] | None = None) -> Path:
    """Write the course (config, source notebook, submissions, gradebook, journal) under ``where``; returns
    its root. ``db_url``: the gradebook (default ``<root>/gradebook.db``)."""
    from nbgrader.api import Gradebook

    from cnncourse.grader import gradebook
    from cnncourse.grader.layout import Course

    students = CLASS if students is None else students
    root = where / "course"
    (root / "solutions" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(notebook(SOLUTIONS), root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    crs = Course.load(root, db_url)
    gradebook.fast_alembic_version()
    with Gradebook(crs.db_url, crs.course_id) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
        gb.update_or_create_notebook(ASSIGNMENT, ASSIGNMENT)
        for test, points in POINTS.items():
            gb.update_or_create_grade_cell(test, ASSIGNMENT, ASSIGNMENT, max_score=points, cell_type="code")
        for name in SOLUTIONS:
            gb.update_or_create_solution_cell(name, ASSIGNMENT, ASSIGNMENT)
        _submissions(gb, students)
    journal = crs.journal_dir(ASSIGNMENT)
    journal.mkdir(parents=True)
    for s, st in students.items():
        if st.status == "missing":
            continue
        folder = root / "submitted" / s / ASSIGNMENT
        folder.mkdir(parents=True)
        if st.status == "invalid notebook":
            (folder / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [ oops')
        else:
            nbformat.write(notebook(student_code(st)), folder / f"{ASSIGNMENT}.ipynb")
        tests = {t: {"passed": t not in st.fails, "message": f"AssertionError: wrong\nLikely cause: {h}" if h
                     else ("AssertionError: wrong" if t in st.fails else ""), "hint": h if t in st.fails else None}
                 for t in POINTS for h in [st.fails.get(t)]}
        entry = {"student": s, "status": st.status, "score": sum(points_of(st).values()),
                 "max_score": sum(POINTS.values()), "seconds": st.seconds, "message": "",
                 "timestamp": stamp_of(st).isoformat(), "tests": {ASSIGNMENT: tests} if st.status == "graded" else {},
                 "merged": True}
        (journal / f"{s}.json").write_text(json.dumps(entry))
    return root


def points_of(st: Student) -> dict[str, float]:
    """Points per test cell: full marks for a passing test of a graded submission, else 0."""
    return {t: p if st.status == "graded" and t not in st.fails else 0.0 for t, p in POINTS.items()}


def stamp_of(st: Student) -> datetime.datetime:
    return DUE + datetime.timedelta(hours=5 if st.late else -5)


def _submissions(gb, students: dict[str, Student]) -> None:
    """Every student and submission in one transaction (``cnncourse grade`` merges one at a time)."""
    from nbgrader.api import Grade, Student as DbStudent, SubmittedAssignment, SubmittedNotebook

    a = gb.find_assignment(ASSIGNMENT)
    nb = a.notebooks[0]
    cells = {c.name: c for c in nb.grade_cells}
    with gb.db.no_autoflush:
        for s, st in students.items():
            who = DbStudent(id=s)
            gb.db.add(who)
            if st.status == "missing":
                continue
            sub = SubmittedAssignment(assignment=a, student=who, timestamp=stamp_of(st))
            snb = SubmittedNotebook(notebook=nb, assignment=sub)
            gb.db.add_all([sub, snb])
            for t, p in points_of(st).items():
                gb.db.add(Grade(cell=cells[t], notebook=snb, auto_score=p, needs_manual_grade=False))
    gb.db.commit()


def scaled(copies: int) -> dict[str, Student]:
    """``copies`` replicas of the class (ids ``s01_0``, ``s01_1``, ...): ``scaled(10)`` has 310 students."""
    return {f"{s}_{k}": st for k in range(copies) for s, st in CLASS.items()}
