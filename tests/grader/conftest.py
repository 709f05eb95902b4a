"""Fixtures of the grading tests (helpers live in helpers.py): the tiny course, and the battery's class
graded once by one ``cnncourse grade --jobs 2`` run."""
from __future__ import annotations

import subprocess
import sys

import pytest
from attacks import SECRET, build_class
from helpers import files_of, make_course, nbgrader_env


@pytest.fixture(scope="session")
def tiny_course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def graded_class(tiny_course):
    """(root, completed process, submitted files before the run) of the battery's one grading run."""
    root, released = tiny_course
    build_class(root, released)
    before = files_of(root / "submitted")
    env = nbgrader_env()
    env["CNNCOURSE_SECRET"] = SECRET
    env["CNNCOURSE_DB"] = f"postgresql://grader:{SECRET}@db.example/class"  # --db wins; must not leak
    proc = subprocess.run([sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", "tiny", "--jobs",
                           "2", "--timeout-cell", "6", "--timeout-notebook", "10", "--memory", "1024",
                           "--max-procs", "32", "--max-file", "16", "--disk", "8", "--max-submission", "2",
                           "--db", f"sqlite:///{root / 'gradebook.db'}", "--no-progress"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    return root, proc, before
