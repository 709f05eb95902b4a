"""The one helper module of the grading tests (and of every test that runs nbgrader on a scratch course).

* the ``tiny`` assignment (add 2 pts, square 3 pts, mean 1 pt) in a temporary course, released once and
  copied per course; submissions built from its released notebook (``answered``, ``submit``);
* ``run_cli``, ``scores``, ``cell_scores``, ``journal_entry``: running and reading ``cnncourse grade``;
* ``leftover_processes``/``leftover_scratch``: nothing may outlive a run;
* ``run_in_thread``: ``asyncio.run`` where the test's own thread may already run an event loop;
* ``autograde``: real ``nbgrader autograde`` of submissions on a scratch copy of one of the course's
  assignments (used by tests/test_assignments.py and tests/test_conv_layers_grading.py); ``autograde_notebooks``
  does the same for notebooks built in memory (``with_answers``) and ``autograded``/``cell_index`` read the result.
"""
from __future__ import annotations

import asyncio
import atexit
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from cnncourse import course

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "tiny"

SETUP = "import os, sys, time\nimport numpy as np"
ADD_SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
SQUARE_SOLUTION = ("def square(x):\n    \"\"\"Elementwise square of an array.\"\"\"\n    ### BEGIN SOLUTION\n"
                   "    return np.asarray(x) ** 2\n    ### END SOLUTION")
MEAN_SOLUTION = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"
TEST_ADD = ('assert add(1, 2) == 3, "add(1, 2) should be 3"\nprint("add: visible tests passed")\n'
            '### BEGIN HIDDEN TESTS\nassert add(10, 10) == 20 and add(-2, 5) == 3, "hidden add"\n### END HIDDEN TESTS')
TEST_SQUARE = ('assert np.asarray(square(np.array([1.0, 2.0]))).tolist() == [1.0, 4.0], "square([1, 2]) should be [1, 4]"\n'
               '### BEGIN HIDDEN TESTS\nassert np.asarray(square(np.arange(3.0))).tolist() == [0.0, 1.0, 4.0], '
               '"hidden square"\n### END HIDDEN TESTS')
TEST_MEAN = ('assert mean([1, 2, 3]) == 2, "mean([1, 2, 3]) should be 2"\n'
             '### BEGIN HIDDEN TESTS\nassert mean([2.0, 4.0]) == 3.0, "hidden mean"\n### END HIDDEN TESTS')
HIDDEN_LINES = ['assert add(10, 10) == 20 and add(-2, 5) == 3, "hidden add"',
                'assert mean([2.0, 4.0]) == 3.0, "hidden mean"', "BEGIN HIDDEN TESTS"]

ADD_OK = "def add(a, b):\n    return a + b"
SQUARE_OK = "def square(x):\n    return np.asarray(x) ** 2"
MEAN_OK = "def mean(xs):\n    return sum(xs) / len(xs)"
ANSWERS_OK = {"add": ADD_OK, "square": SQUARE_OK, "mean": MEAN_OK}
FULL = 6.0


def nbgrader_meta(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    """A code cell's ``metadata`` with nbgrader's cell flags (schema 3)."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's ``tiny`` notebook (reference solutions, hidden tests)."""
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell("# Tiny assignment\nImplement `add`, `square` and `mean`."),
        v4.new_code_cell(SETUP, metadata=nbgrader_meta("setup", locked=True)),
        v4.new_code_cell(ADD_SOLUTION, metadata=nbgrader_meta("add", solution=True)),
        v4.new_code_cell(TEST_ADD, metadata=nbgrader_meta("test_add", grade=True, locked=True, points=2)),
        v4.new_code_cell(SQUARE_SOLUTION, metadata=nbgrader_meta("square", solution=True)),
        v4.new_code_cell(TEST_SQUARE, metadata=nbgrader_meta("test_square", grade=True, locked=True, points=3)),
        v4.new_code_cell(MEAN_SOLUTION, metadata=nbgrader_meta("mean", solution=True)),
        v4.new_code_cell(TEST_MEAN, metadata=nbgrader_meta("test_mean", grade=True, locked=True, points=1)),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def nbgrader_env() -> dict[str, str]:
    """Environment for grading subprocesses: the venv's bin on PATH, no course override, warnings off."""
    env = course.nbgrader_env()
    for var in ("CNNCOURSE_DB", "CNNCOURSE_ROOT"):
        env.pop(var, None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


_TEMPLATE: dict[str, Path] = {}


def make_course(where: Path) -> tuple[Path, nbformat.NotebookNode]:
    """A course folder with the real nbgrader config and the ``tiny`` assignment; returns (root, released nb).
    The assignment is released once per test process and copied for every further course."""
    from cnncourse.grader import gradebook
    from cnncourse.grader.layout import Course

    root = where / "course"
    if "root" not in _TEMPLATE:
        base = Path(tempfile.mkdtemp(prefix="cnncourse-tiny-"))
        atexit.register(shutil.rmtree, base, True)
        (base / "course" / "solutions" / ASSIGNMENT).mkdir(parents=True)
        shutil.copy2(ROOT / "nbgrader_config.py", base / "course" / "nbgrader_config.py")
        nbformat.write(source_notebook(), base / "course" / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        gradebook.fast_alembic_version()
        gradebook.generate(Course.load(base / "course"), ASSIGNMENT, base / "release", f"sqlite:///{base / 'r.db'}")
        _TEMPLATE["root"] = base / "course"
        _TEMPLATE["released"] = base / "release" / "course" / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shutil.copytree(_TEMPLATE["root"], root)
    return root, nbformat.read(_TEMPLATE["released"], as_version=4)


def cell_by_id(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def answered(released, answers: dict[str, str]):
    """A copy of ``released`` with the given answer cells replaced."""
    nb = copy.deepcopy(released)
    for gid, code in answers.items():
        cell_by_id(nb, gid).source = code
    return nb


def submit(root: Path, student: str, nb=None, name=f"{ASSIGNMENT}.ipynb", raw: str | None = None) -> Path:
    """Place a submission in ``submitted/<student>/tiny/``; returns the folder."""
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    if raw is not None:
        (folder / name).write_text(raw)
    elif nb is not None:
        nbformat.write(nb, folder / name)
    return folder


def takes_ctrl_c() -> None:
    """``preexec_fn`` of a run a test interrupts with SIGINT: Ctrl-C's default action, whatever this test run
    inherited. A background job of a non-interactive shell (``make test &``) starts with SIGINT ignored, a
    Python started that way never raises KeyboardInterrupt, and the interrupted run would finish instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnncourse.cli", "--root", str(root), *args], cwd=root,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def scores(root: Path, assignment: str = ASSIGNMENT, course_id: str = "cnncourse") -> dict[str, tuple[float, float]]:
    """``{student: (score, max_score)}`` in the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id) as gb:
        return {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(assignment)}


def cell_scores(root: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        return {g.name: g.score for nb in sub.notebooks for g in nb.grades}


def journal_entry(root: Path, student: str) -> dict:
    return json.loads((root / "autograded" / ".cnncourse-grade" / ASSIGNMENT / f"{student}.json").read_text())


def summary_lines(stdout: str) -> dict[str, str]:
    """The summary table's line per student."""
    return {line.split()[0]: line for line in stdout.splitlines()[2:] if line.strip() and " " in line}


def run_in_thread(make_coro):
    """``asyncio.run(make_coro())`` in a thread of its own: in a pytest-xdist worker the browser tests'
    session-wide Playwright keeps an event loop running in the test's thread, where ``asyncio.run`` refuses."""
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


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


def leftover_scratch(root: Path, assignment: str = ASSIGNMENT, wait: float = 20.0) -> list[str]:
    """Scratch folders of grading runs of this course still in the temp folder after ``wait`` seconds (the
    janitor process removes a run's scratch when the run has gone, a moment after the command returns)."""
    from cnncourse.grader.layout import Course
    from cnncourse.grader.scheduler import scratch_prefix

    prefix = scratch_prefix(Course.load(root), assignment)
    deadline = time.monotonic() + wait
    while True:
        found = sorted(str(p) for p in Path(tempfile.gettempdir()).glob(prefix + "*"))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to check nobody's files changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


# ------------------------------------------------------------------ nbgrader on a copy of a real assignment
def make_real_course(course_root: Path, assignment: str, workdir: Path) -> Path:
    """A scratch course in ``workdir`` holding the config and one assignment's source, released there."""
    root = workdir / "course"
    (root / course.SOURCE_DIR).mkdir(parents=True)
    shutil.copy2(course_root / course.CONFIG_FILE, root / course.CONFIG_FILE)
    shutil.copytree(course_root / course.SOURCE_DIR / assignment, root / course.SOURCE_DIR / assignment)
    run_nbgrader(root, "generate_assignment", assignment, "--force")
    return root


def run_nbgrader(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in the scratch course ``root`` with its own gradebook; raises with the log on failure."""
    env = nbgrader_env()
    env["CNNCOURSE_DB"] = f"sqlite:///{root / 'gradebook.db'}"
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def autograde(course_root: Path, assignment: str, submissions: dict[str, Path],
              workdir: Path | None = None) -> dict[str, tuple[float, float]]:
    """Autograde ``submissions`` (student id -> notebook file) of ``assignment`` with ``nbgrader autograde``
    in a scratch copy of the course; returns ``{student: (score, max_score)}``."""
    with tempfile.TemporaryDirectory(prefix="cnncourse-nbgrader-") as tmp:
        root = make_real_course(Path(course_root), assignment, Path(workdir or tmp))
        notebooks = sorted((root / course.SOURCE_DIR / assignment).glob("*.ipynb"))
        if len(notebooks) != 1:
            raise ValueError(f"{assignment} has {len(notebooks)} notebooks; pass one submission folder per student")
        for student, path in submissions.items():
            target = root / "submitted" / student / assignment
            target.mkdir(parents=True)
            shutil.copy2(path, target / notebooks[0].name)
        run_nbgrader(root, "autograde", assignment, "--force")
        return scores(root, assignment)


def cell_index(nb, grade_id: str) -> int:
    """Position in ``nb`` of the cell whose nbgrader ``grade_id`` is ``grade_id``."""
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def with_answers(notebook: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook file ``notebook`` with the cells named in ``answers`` (grade id -> source) replaced."""
    nb = nbformat.read(notebook, as_version=4)
    for grade_id, source in answers.items():
        nb.cells[cell_index(nb, grade_id)].source = source
    return nb


def autograde_notebooks(course_root: Path, assignment: str, workdir: Path,
                        submissions: dict[str, nbformat.NotebookNode]) -> tuple[Path, dict[str, tuple[float, float]], float]:
    """``nbgrader autograde`` of ``submissions`` (student id -> notebook) in a scratch course made in ``workdir``.

    Returns the scratch course's root, ``{student: (score, max_score)}`` and the seconds autograde took."""
    root = make_real_course(Path(course_root), assignment, workdir)
    for student, nb in submissions.items():
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
    start = time.perf_counter()
    run_nbgrader(root, "autograde", assignment, "--force")
    elapsed = time.perf_counter() - start
    return root, scores(root, assignment), elapsed


def autograded(root: Path, assignment: str, student: str) -> nbformat.NotebookNode:
    """The notebook ``nbgrader autograde`` wrote for ``student`` in the scratch course ``root``."""
    return nbformat.read(root / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
