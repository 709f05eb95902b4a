"""A tiny nbgrader assignment (``tiny``: add 2 pts, square 3 pts, mean 1 pt) in a temporary course, and the
bad submissions of the battery built from its released notebook.

The fixture assignment does not depend on the course's real assignments; it follows the course's rule for
hidden tests: a locked setup cell, run before any student code, captures the references the hidden tests use
(``_check``) and the oracles, so a student who monkeypatches ``numpy.testing`` fools only the visible tests.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "tiny"

SETUP = '''\
# Setup (do not edit): oracles and the checker are captured before any of your code runs.
import os, sys, time
import numpy as np
import numpy.testing as npt


def _sealed():
    _type, _len, _range, _abs, _AE, _list, _float, _int = type, len, range, abs, AssertionError, list, float, int
    _ndarray, _tolist = np.ndarray, np.ndarray.tolist

    def check(actual, expected, name):
        if _type(actual) is _ndarray:
            actual = _tolist(actual)
        if _type(actual) is not _type(expected):
            raise _AE(f"{name}: expected a {_type(expected).__name__}, got {_type(actual).__name__}")
        if _type(expected) is _list:
            if _len(actual) != _len(expected):
                raise _AE(f"{name}: wrong shape")
            for i in _range(_len(expected)):
                check(actual[i], expected[i], name)
        elif _type(expected) is _float:
            if not _abs(actual - expected) <= 1e-9:
                raise _AE(f"{name}: expected {expected!r}, got {actual!r}")
        elif not (actual == expected):
            raise _AE(f"{name}: expected {expected!r}, got {actual!r}")
    return check


_check = _sealed()
_X = np.arange(6.0).reshape(2, 3)
_SQ = (_X * _X).tolist()
_ADD_CASES = [(3, 4, 7), (-2, 5, 3), (10, 10, 20)]
'''

ADD_SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
SQUARE_SOLUTION = ("def square(x):\n    \"\"\"Elementwise square of an array.\"\"\"\n    ### BEGIN SOLUTION\n"
                   "    return np.asarray(x) ** 2\n    ### END SOLUTION")
MEAN_SOLUTION = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"

TEST_ADD = '''\
assert add(1, 2) == 3, "add(1, 2) should be 3"
print("add: visible tests passed")
### BEGIN HIDDEN TESTS
for _a, _b, _want in _ADD_CASES:
    _check(add(_a, _b), _want, f"hidden add({_a}, {_b})")
### END HIDDEN TESTS'''
TEST_SQUARE = '''\
npt.assert_allclose(square(np.array([1.0, 2.0])), [1.0, 4.0], err_msg="square([1, 2]) should be [1, 4]")
### BEGIN HIDDEN TESTS
_check(square(_X), _SQ, "hidden square(X)")
### END HIDDEN TESTS'''
TEST_MEAN = '''\
assert mean([1, 2, 3]) == 2, "mean([1, 2, 3]) should be 2"
### BEGIN HIDDEN TESTS
_check(mean([2.0, 4.0]), 3.0, "hidden mean")
### END HIDDEN TESTS'''

HIDDEN_LINES = ['for _a, _b, _want in _ADD_CASES:', '_check(add(_a, _b), _want, f"hidden add({_a}, {_b})")',
                '_check(square(_X), _SQ, "hidden square(X)")', '_check(mean([2.0, 4.0]), 3.0, "hidden mean")',
                "BEGIN HIDDEN TESTS"]

ADD_OK = "def add(a, b):\n    return a + b"
SQUARE_OK = "def square(x):\n    return np.asarray(x) ** 2"
MEAN_OK = "def mean(xs):\n    return sum(xs) / len(xs)"
ANSWERS_OK = {"add": ADD_OK, "square": SQUARE_OK, "mean": MEAN_OK}


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook():
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell("# Tiny assignment\nImplement `add`, `square` and `mean`."),
        v4.new_code_cell(SETUP, metadata=_meta("setup", locked=True)),
        v4.new_code_cell(ADD_SOLUTION, metadata=_meta("add", solution=True)),
        v4.new_code_cell(TEST_ADD, metadata=_meta("test_add", grade=True, locked=True, points=2)),
        v4.new_code_cell(SQUARE_SOLUTION, metadata=_meta("square", solution=True)),
        v4.new_code_cell(TEST_SQUARE, metadata=_meta("test_square", grade=True, locked=True, points=3)),
        v4.new_code_cell(MEAN_SOLUTION, metadata=_meta("mean", solution=True)),
        v4.new_code_cell(TEST_MEAN, metadata=_meta("test_mean", grade=True, locked=True, points=1)),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("CNNCOURSE_DB", None)
    env.pop("CNNCOURSE_ROOT", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


_TEMPLATE: dict[str, Path] = {}


def make_course(where: Path) -> tuple[Path, nbformat.NotebookNode]:
    """A course folder with the real nbgrader config and the ``tiny`` assignment; returns (root, released nb).
    The assignment is released once (nbgrader's GenerateAssignment) and copied for every further course."""
    from cnncourse import autograde

    root = where / "course"
    if "root" not in _TEMPLATE:
        base = Path(tempfile.mkdtemp(prefix="cnncourse-tiny-"))
        (base / "course" / "solutions" / ASSIGNMENT).mkdir(parents=True)
        shutil.copy2(ROOT / "nbgrader_config.py", base / "course" / "nbgrader_config.py")
        nbformat.write(source_notebook(), base / "course" / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        autograde._fast_alembic_version()
        autograde._run_nbgrader_generate(base / "course", ASSIGNMENT, base / "release",
                                         f"sqlite:///{base / 'release.db'}")
        _TEMPLATE["root"] = base / "course"
        _TEMPLATE["released"] = base / "release" / "course" / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shutil.copytree(_TEMPLATE["root"], root)
    return root, nbformat.read(_TEMPLATE["released"], as_version=4)


def cell_by_id(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def answered(released, answers: dict[str, str]):
    nb = copy.deepcopy(released)
    for gid, code in answers.items():
        cell_by_id(nb, gid).source = code
    return nb


def submit(root: Path, student: str, nb=None, name=f"{ASSIGNMENT}.ipynb", raw: str | None = None) -> Path:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    if raw is not None:
        (folder / name).write_text(raw)
    elif nb is not None:
        nbformat.write(nb, folder / name)
    return folder


def run_cli(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnncourse.cli", "--root", str(root), *args], cwd=root,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def scores(root: Path) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        return {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(ASSIGNMENT)}


def cell_scores(root: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        return {g.name: g.score for nb in sub.notebooks for g in nb.grades}


def leftover_processes(marker: str) -> list[str]:
    """Command lines of live processes (other than this one) that mention ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


@pytest.fixture(scope="session")
def tiny_course(tmp_path_factory):
    where = tmp_path_factory.mktemp("tiny")
    root, released = make_course(where)
    return root, released


# ------------------------------------------------------------------ the battery: one class, graded once
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
DISK_BOMB = """\
with open("junk.bin", "wb") as f:          # stopped by the file-size limit (OSError: File too large)
    while True:
        f.write(bytes(1024 * 1024))
"""
REBIND = """\
_check = lambda *args, **kwargs: None     # the hidden tests' checker and oracles, replaced and emptied
_ADD_CASES.clear()
def add(a, b):
    return 3                               # right for the visible test only
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
    "rebind": (4, "graded", {"test_add": 0, "test_square": 3, "test_mean": 1}),
    "disk_bomb": (3, "graded", {"test_add": 2, "test_square": 0, "test_mean": 1}),
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
    submit(root, "rebind", answered(released, {**ANSWERS_OK, "add": REBIND}))
    submit(root, "disk_bomb", answered(released, {**ANSWERS_OK, "square": DISK_BOMB + SQUARE_OK}))
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
                   "--memory", "1024", "--max-procs", "32", "--max-file", "16", "--no-progress")
    return root, proc
