"""Two `cnncourse grade` runs on one class at the same time: the second is refused with a message naming the
first, nothing is double-counted, and the class is graded once."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ANSWERS_OK, answered, journal_entry, make_course, nbgrader_env, run_cli, scores, submit

from cnncourse import course
from cnncourse.grader.journal import ClassLock
from cnncourse.grader.layout import Course


def test_a_held_lock_names_its_holder(tmp_path):
    root, _ = make_course(tmp_path)
    with ClassLock(Course.load(root)):
        with pytest.raises(course.CourseError, match=r"another `cnncourse grade` is grading this course \(pid \d+"):
            ClassLock(Course.load(root)).__enter__()
    with ClassLock(Course.load(root)):  # released: free again
        pass


@pytest.mark.slow
def test_two_runs_at_once_grade_the_class_once(tmp_path):
    root, released = make_course(tmp_path)
    submit(root, "ann", answered(released, ANSWERS_OK))
    cmd = [sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", "tiny", "--jobs", "1",
           "--no-progress"]
    runs = [subprocess.Popen(cmd, cwd=root, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outs = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 1], outs
    refused = next(err for (out, err), run in zip(outs, runs) if run.returncode == 1)
    assert "another `cnncourse grade` is grading this course (pid" in refused
    assert scores(root) == {"ann": (6.0, 6.0)}
    assert journal_entry(root, "ann")["status"] == "graded"
    again = run_cli(root, "grade", "tiny", "--no-progress")
    assert again.returncode == 0 and "skipped" in again.stdout, again.stdout + again.stderr
