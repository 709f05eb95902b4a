"""A grading run that is killed (SIGKILL) or interrupted (Ctrl-C) half-way loses nothing already graded,
leaves no process behind, and the next run continues where it stopped."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import (ANSWERS_OK, ASSIGNMENT, SQUARE_OK, answered, leftover_processes, make_course,
                      nbgrader_env, run_cli, scores, submit)

pytestmark = pytest.mark.slow


def start(root, timeout_cell):
    return subprocess.Popen([sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", ASSIGNMENT,
                             "--jobs", "1", "--timeout-cell", str(timeout_cell), "--memory", "1024",
                             "--no-progress"], cwd=root, env=nbgrader_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop_after(proc, journal, student, sig):
    """Send ``sig`` to the grading run 2 s after ``student`` is graded (the next one is then running)."""
    deadline = time.monotonic() + 120
    while not (journal / f"{student}.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)
    os.kill(proc.pid, sig)
    return proc.communicate(timeout=60)


def test_killed_and_interrupted_runs_resume(tmp_path):
    root, released = make_course(tmp_path)
    slow = answered(released, {**ANSWERS_OK, "square": "time.sleep(30)\n" + SQUARE_OK})
    for student in ("a_fast", "c_fast"):
        submit(root, student, answered(released, ANSWERS_OK))
    for student in ("b_slow", "d_slow"):
        submit(root, student, slow)
    journal = root / "autograded" / ".cnncourse-grade" / ASSIGNMENT
    done = lambda: sorted(p.stem for p in journal.glob("*.json"))  # noqa: E731

    # 1. killed outright while b_slow runs: its worker and kernel die with the run (PDEATHSIG)
    stop_after(start(root, 40), journal, "a_fast", signal.SIGKILL)
    time.sleep(0.5)
    assert leftover_processes(str(root)) == []
    assert scores(root) == {"a_fast": (6.0, 6.0)} and done() == ["a_fast"]

    # 2. Ctrl-C while d_slow runs: the run stops its workers itself and says how to continue
    proc = start(root, 3)
    out, err = stop_after(proc, journal, "c_fast", signal.SIGINT)
    assert proc.returncode == 130 and "run the same command again" in err, out + err
    assert leftover_processes(str(root)) == []
    assert done() == ["a_fast", "b_slow", "c_fast"]

    # 3. the next run grades only what is left
    rerun = run_cli(root, "grade", ASSIGNMENT, "--jobs", "2", "--timeout-cell", "3", "--memory", "1024",
                    "--no-progress")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    status = {line.split()[0]: line for line in rerun.stdout.splitlines()[2:] if line.strip()}
    assert all("skipped" in status[s] for s in ("a_fast", "b_slow", "c_fast")) and "timed out" in status["d_slow"]
    assert scores(root) == {"a_fast": (6.0, 6.0), "b_slow": (3.0, 6.0), "c_fast": (6.0, 6.0), "d_slow": (3.0, 6.0)}
