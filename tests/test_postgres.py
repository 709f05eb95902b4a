"""A real PostgreSQL gradebook: `cnncourse release`, `grade --jobs 2 --db postgresql://...`, a `--force` regrade,
`feedback` and `export` against a throwaway cluster give what the same commands give with SQLite, and two
`grade` runs started at the same time on one class neither corrupt nor double-count the gradebook.

The cluster is started once per session (``initdb`` into a temporary folder, ``pg_ctl start`` on a free
localhost port, ``pg_ctl stop`` at the end). PostgreSQL's binaries are found on PATH or in
``/usr/lib/postgresql/*/bin``; as root they run as the ``postgres`` user (PostgreSQL refuses to run as root).
Without PostgreSQL the tests skip, saying how to install it. The assignment is a purpose-built two-question
quiz so the grading stays fast.
"""
from __future__ import annotations

import copy
import csv
import html
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grader"))
from helpers import nbgrader_meta  # noqa: E402  (tests/grader/helpers.py)

ASSIGNMENT = "pgquiz"
INSTALL_HINT = ("PostgreSQL is not installed: `apt-get install -y postgresql` (Debian/Ubuntu; .ci/run does it), "
                "`brew install postgresql` (macOS), or put initdb and pg_ctl on PATH")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]  # one throwaway cluster, on one worker

# --------------------------------------------------------------------------------------- the quiz assignment
SOLUTIONS = {
    "double": "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
    "out_size": ("def out_size(n, k, s=1, p=0):\n    \"\"\"Output width of a convolution.\"\"\"\n"
                 "    ### BEGIN SOLUTION\n    return (n - k + 2 * p) // s + 1\n    ### END SOLUTION"),
}
TESTS = {
    "test_double": ("assert double(3) == 6, 'double(3) should be 6'\n### BEGIN HIDDEN TESTS\n"
                    "for _x in range(-3, 4):\n    assert double(_x) == _x + _x\n### END HIDDEN TESTS", 1),
    "test_out_size": ("assert out_size(32, 5) == 28, 'out_size(32, 5) should be 28'\n### BEGIN HIDDEN TESTS\n"
                      "assert out_size(227, 11, 4) == 55\nassert out_size(7, 3, 2, 1) == 4\n"
                      "### END HIDDEN TESTS", 2),
}
ANSWERS = {  # the code each student hands in (absent: the stub is left as released)
    "ada": {"double": "def double(x):\n    return x * 2",
            "out_size": "def out_size(n, k, s=1, p=0):\n    return (n + 2 * p - k) // s + 1"},
    "bob": {"double": "def double(x):\n    return x + x",
            "out_size": "def out_size(n, k, s=1, p=0):\n    return n - k + 1"},  # ignores stride and padding
    "cy": {},
}



def quiz_source() -> nbformat.NotebookNode:
    """The nbgrader source notebook: two functions, each with a visible and a hidden test."""
    v4 = nbformat.v4
    cells = [v4.new_markdown_cell("# A two-question quiz")]
    for (name, solution), (test_id, (test, points)) in zip(SOLUTIONS.items(), TESTS.items()):
        cells.append(v4.new_code_cell(solution, metadata=nbgrader_meta(name, solution=True)))
        cells.append(v4.new_code_cell(test, metadata=nbgrader_meta(test_id, grade=True, locked=True, points=points)))
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run_cli(root: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """``cnncourse --root ROOT ARGS...`` as an instructor runs it."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONWARNINGS="ignore")
    env.pop("CNNCOURSE_DB", None)
    env.pop("CNNCOURSE_ROOT", None)
    proc = subprocess.run([sys.executable, "-m", "cnncourse.cli", "--root", str(root), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc


def check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{' '.join(map(str, proc.args[3:]))} exited {proc.returncode}:\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def released_course(tmp_path_factory) -> Path:
    """A course with the quiz in solutions/, released by `cnncourse release`, and every student's submission."""
    root = tmp_path_factory.mktemp("pgcourse") / "course"
    (root / "solutions" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(quiz_source(), root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    check(run_cli(root, "release", ASSIGNMENT))
    released = nbformat.read(root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for student, answers in ANSWERS.items():
        nb = copy.deepcopy(released)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return root


def class_copy(released_course: Path, where: Path) -> Path:
    """A fresh copy of the released course with its submissions (no gradebook, nothing graded yet)."""
    root = where / "course"
    shutil.copytree(released_course, root, ignore=shutil.ignore_patterns("gradebook.db*", "autograded", "feedback"))
    return root


# ------------------------------------------------------------------------------------ a throwaway cluster
def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


class Cluster:
    """A PostgreSQL server in a temporary folder, reachable at ``127.0.0.1:port`` as user ``postgres``."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="cnncourse-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: hand the folder to the postgres user
            if shutil.which("runuser") is None:
                pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL as user postgres")
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user: " + INSTALL_HINT)
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        proc = subprocess.run([*self._as_user, *cmd], capture_output=True, text=True, timeout=timeout,
                              cwd=self.folder)
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}\n{log}"

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        # A test server: durability off (fast), TCP on localhost only, its socket in its own folder.
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=60, cwd=self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database)) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="session")
def postgres() -> Cluster:
    """A throwaway PostgreSQL cluster for the whole session (skips, saying how to install it, when absent)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg (PostgreSQL driver) is missing: `pip install -c constraints.txt -e '.[dev]'`")
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip(INSTALL_HINT)
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------------------------- the tests
def export(root: Path, db: str, out: Path) -> dict[str, dict[str, str]]:
    check(run_cli(root, "export", "--db", db, "--output", str(out)))
    return {row["student"]: row for row in csv.DictReader(out.open())}


def feedback_scores(page: str) -> list[tuple[float, float]]:
    """Every "Score: X / Y" a feedback page shows, the total first, then each graded cell."""
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    return [(float(x), float(y)) for x, y in re.findall(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", text)]


def expected_totals() -> dict[str, float]:
    """Each student's score, derived from the quiz: a test's points when the answer matches the solution."""
    def correct(student: str, name: str) -> bool:
        code = ANSWERS[student].get(name)
        if code is None:
            return False
        space: dict = {}
        exec(code, space)  # the student's function, checked on the hidden cases of the quiz
        fn = space[name]
        if name == "double":
            return all(fn(x) == 2 * x for x in range(-3, 4))
        return fn(32, 5) == 28 and fn(227, 11, 4) == 55 and fn(7, 3, 2, 1) == 4

    points = {name: TESTS[test_id][1] for name, test_id in zip(SOLUTIONS, TESTS)}
    return {s: float(sum(p for name, p in points.items() if correct(s, name))) for s in ANSWERS}


def test_postgres_gradebook_agrees_with_sqlite(released_course, postgres, tmp_path):
    sqlite_root = class_copy(released_course, tmp_path / "sqlite")
    pg_root = class_copy(released_course, tmp_path / "pg")
    sqlite_db = f"sqlite:///{sqlite_root / 'gradebook.db'}"
    pg_db = postgres.create_database("agree")

    check(run_cli(sqlite_root, "grade", ASSIGNMENT, "--jobs", "2", "--db", sqlite_db, "--no-progress"))
    check(run_cli(pg_root, "grade", ASSIGNMENT, "--jobs", "2", "--db", pg_db, "--no-progress"))
    by_sqlite = export(sqlite_root, sqlite_db, tmp_path / "sqlite.csv")
    by_pg = export(pg_root, pg_db, tmp_path / "pg.csv")
    assert by_pg == by_sqlite, f"PostgreSQL and SQLite gradebooks differ:\n{by_pg}\n{by_sqlite}"
    assert {s: float(row[ASSIGNMENT]) for s, row in by_pg.items()} == expected_totals()

    # A regrade replaces the grades; it never adds a second submission per student.
    check(run_cli(pg_root, "grade", ASSIGNMENT, "--jobs", "2", "--db", pg_db, "--force", "--no-progress"))
    assert export(pg_root, pg_db, tmp_path / "pg-again.csv") == by_sqlite
    submissions = postgres.query("agree", "SELECT count(*) FROM submitted_assignment")[0][0]
    assert submissions == len(ANSWERS), f"{submissions} submissions in the gradebook for {len(ANSWERS)} students"

    for root, db in ((sqlite_root, sqlite_db), (pg_root, pg_db)):
        check(run_cli(root, "feedback", ASSIGNMENT, "--db", db))
    for student in ANSWERS:
        relative = Path("feedback") / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
        pg_page, sqlite_page = (pg_root / relative).read_text(), (sqlite_root / relative).read_text()
        assert "BEGIN HIDDEN TESTS" not in pg_page, f"{student}'s feedback shows hidden tests"
        pg_scores, sqlite_scores = feedback_scores(pg_page), feedback_scores(sqlite_page)
        assert pg_scores == sqlite_scores, f"{student}'s feedback differs: {pg_scores} vs {sqlite_scores}"
        assert pg_scores[0] == (expected_totals()[student], float(sum(p for _, p in TESTS.values())))


def test_grade_runs_at_once_do_not_double_count(released_course, postgres, tmp_path):
    """Three `cnncourse grade` runs on one class at the same time: two from the same course folder (an
    instructor who starts it twice: the class lock lets one grade) and one from a second clone sharing the
    PostgreSQL gradebook (two graders on a hub)."""
    first = class_copy(released_course, tmp_path / "a")
    roots = [first, first, class_copy(released_course, tmp_path / "b")]
    name = "concurrent"
    db = postgres.create_database(name)
    results: dict[int, subprocess.CompletedProcess] = {}

    def grade(i: int) -> None:
        results[i] = run_cli(roots[i], "grade", ASSIGNMENT, "--jobs", "1", "--db", db, "--no-progress")

    runs = [threading.Thread(target=grade, args=(i,)) for i in range(len(roots))]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=600)
    assert len(results) == len(roots), "a grade run did not finish within 10 minutes"
    for proc in results.values():
        # Each run either grades or says that another run holds the class; neither crashes.
        said = (proc.stdout + proc.stderr).lower()
        assert proc.returncode == 0 or "another" in said or "already" in said, \
            f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert results[0].returncode == 0 or results[1].returncode == 0, "neither run in the first folder graded"
    # Any student a refused run left out is graded by a plain rerun.
    check(run_cli(first, "grade", ASSIGNMENT, "--jobs", "1", "--db", db, "--no-progress"))

    rows = export(first, db, tmp_path / "grades.csv")
    assert {s: float(row[ASSIGNMENT]) for s, row in rows.items()} == expected_totals()
    per_student = postgres.query(name, "SELECT s.id, count(*) FROM submitted_assignment a "
                                       "JOIN student s ON s.id = a.student_id GROUP BY s.id")
    assert dict(per_student) == {s: 1 for s in ANSWERS}, f"submissions per student: {per_student}"
    grades = postgres.query(name, "SELECT count(*) FROM grade")[0][0]
    assert grades == len(ANSWERS) * len(TESTS), f"{grades} grade rows for {len(ANSWERS)} x {len(TESTS)} cells"
