"""A grading run that is killed (SIGKILL) or interrupted (Ctrl-C) half-way loses nothing already graded,
leaves no process or scratch folder behind, and the next run continues where it stopped; a worker that dies
is recorded as crashed and the run goes on; a submission that ended two runs is not tried a third time."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import (ANSWERS_OK, SQUARE_OK, answered, journal_entry, leftover_processes, leftover_scratch,
                     make_course, nbgrader_env, run_cli, scores, submit, summary_lines, takes_ctrl_c)

from cnncourse.grader.procs import descendants

pytestmark = pytest.mark.slow


def start(root, timeout_cell, jobs=1):
    return subprocess.Popen([sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", "tiny",
                             "--jobs", str(jobs), "--timeout-cell", str(timeout_cell), "--memory", "1024",
                             "--no-progress"], cwd=root, env=nbgrader_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=takes_ctrl_c)


def wait_for(proc, condition, what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, (what, proc.communicate())
        time.sleep(0.2)


def stop_after(proc, journal, student, sig):
    """Send ``sig`` to the grading run 2 s after ``student`` is graded (the next one is then running)."""
    wait_for(proc, lambda: (journal / f"{student}.json").exists(), f"{student} graded")
    time.sleep(2)
    os.kill(proc.pid, sig)
    return proc.communicate(timeout=60)


def stop_while(proc, journal, student, sig):
    """Send ``sig`` to the grading run 1 s after it started grading ``student`` (its attempt is counted when its
    worker starts; the next worker starts before the previous student's journal entry is written, so timing
    from that entry raced the slow student's cell limit on a loaded machine)."""
    wait_for(proc, lambda: (journal / f"{student}.attempts").exists(), f"{student} started")
    time.sleep(1)
    os.kill(proc.pid, sig)
    return proc.communicate(timeout=60)


def test_killed_and_interrupted_runs_resume(tmp_path):
    root, released = make_course(tmp_path)
    slow = answered(released, {**ANSWERS_OK, "square": "time.sleep(30)\n" + SQUARE_OK})
    for student in ("a_fast", "c_fast"):
        submit(root, student, answered(released, ANSWERS_OK))
    for student in ("b_slow", "d_slow"):
        submit(root, student, slow)
    journal = root / "autograded" / ".cnncourse-grade" / "tiny"
    done = lambda: sorted(p.stem for p in journal.glob("*.json"))  # noqa: E731

    # 1. killed outright while b_slow runs: its worker and kernel die with the run, the janitor cleans up
    stop_after(start(root, 40), journal, "a_fast", signal.SIGKILL)
    time.sleep(1)
    assert leftover_processes(str(root)) == [] and leftover_scratch(root) == []
    assert scores(root) == {"a_fast": (6.0, 6.0)} and done() == ["a_fast"]

    # 2. Ctrl-C while d_slow runs: the run stops its workers itself and says how to continue
    proc = start(root, 4)
    out, err = stop_while(proc, journal, "d_slow", signal.SIGINT)
    assert proc.returncode == 130 and "run the same command again" in err, out + err
    time.sleep(1)
    assert leftover_processes(str(root)) == [] and leftover_scratch(root) == []
    assert done() == ["a_fast", "b_slow", "c_fast"]

    # 3. the next run grades only what is left
    rerun = run_cli(root, "grade", "tiny", "--jobs", "2", "--timeout-cell", "3", "--memory", "1024", "--no-progress")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    status = summary_lines(rerun.stdout)
    assert all("skipped" in status[s] for s in ("a_fast", "b_slow", "c_fast")) and "timed out" in status["d_slow"]
    assert scores(root) == {"a_fast": (6.0, 6.0), "b_slow": (3.0, 6.0), "c_fast": (6.0, 6.0), "d_slow": (3.0, 6.0)}


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_a_dying_worker_is_recorded_and_the_run_goes_on(tmp_path):
    root, released = make_course(tmp_path)
    submit(root, "a_slow", answered(released, {**ANSWERS_OK, "square": "time.sleep(40)\n" + SQUARE_OK}))
    submit(root, "b_fast", answered(released, ANSWERS_OK))
    proc = start(root, 60)  # the worker to kill: a child of the run with a sandboxed kernel (bwrap) below it
    workers = lambda: [p for p in children(proc.pid) if b"bwrap" not in cmdline(p)  # noqa: E731 (not the probe)
                       and any(b"bwrap" in cmdline(k) for k in descendants(p))]
    wait_for(proc, lambda: workers(), "a worker with a kernel")
    time.sleep(2)
    os.kill(workers()[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    lines = summary_lines(out)
    assert "crashed" in lines["a_slow"] and "the worker died (signal 9)" in lines["a_slow"], out
    assert "graded" in lines["b_fast"]
    assert scores(root) == {"a_slow": (0.0, 6.0), "b_fast": (6.0, 6.0)}
    assert journal_entry(root, "a_slow")["status"] == "crashed"
    assert leftover_processes(str(root)) == [] and leftover_scratch(root) == []
    rerun = run_cli(root, "grade", "tiny", "--no-progress")  # recorded: not tried again without --force
    assert "skipped" in summary_lines(rerun.stdout)["a_slow"], rerun.stdout + rerun.stderr


def test_a_submission_that_ended_two_runs_is_not_tried_again(tmp_path):
    root, released = make_course(tmp_path)
    submit(root, "deadly", answered(released, ANSWERS_OK))
    attempts = root / "autograded" / ".cnncourse-grade" / "tiny" / "deadly.attempts"
    attempts.parent.mkdir(parents=True)
    attempts.write_text("2")  # two runs died while grading it
    proc = run_cli(root, "grade", "tiny", "--no-progress")
    line = summary_lines(proc.stdout)["deadly"]
    assert "crashed" in line and "2 earlier grading runs ended" in line, proc.stdout + proc.stderr
    assert scores(root) == {"deadly": (0.0, 6.0)}
