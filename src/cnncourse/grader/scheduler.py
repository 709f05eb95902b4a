"""``cnncourse grade``: every submission of an assignment through a worker process, N at a time.

One run holds the class lock (``journal.ClassLock``), makes a template gradebook once, and forks one worker
per submission (``worker.py``). When a worker finishes, its grades are merged into the class gradebook in one
transaction, only its autograded notebooks are moved into ``autograded/``, and a journal entry is written; a
worker that dies or runs past the hard limit is recorded as crashed / timed out with 0 points, and the run
goes on. A run that is interrupted keeps everything merged so far; the next run skips journaled students
(``--force`` regrades). A janitor process removes the run's scratch folder even when the run is killed.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from pathlib import Path

from cnncourse import course
from cnncourse.grader import gradebook, journal, procs, sandbox
from cnncourse.grader.layout import Course
from cnncourse.grader.limits import Limits
from cnncourse.grader.result import Result
from cnncourse.grader.worker import Job, worker_main


def start_janitor(scratch: Path) -> int:
    """Fork a process that removes ``scratch`` once this process is gone (killed or not); returns the
    write end of its pipe: close it to let the janitor clean up now."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the janitor: no Ctrl-C, own session, waits for EOF
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.setsid()
            os.closerange(3, read_end)  # the class lock among them: released when the run ends, not later
            os.closerange(read_end + 1, 1 << 16)
            while os.read(read_end, 1):
                pass
            shutil.rmtree(scratch, ignore_errors=True)
        finally:
            os._exit(0)
    os.close(read_end)
    return write_end


def _run_worker(job: Job, janitor_fd: int) -> None:
    os.close(janitor_fd)  # the janitor must see EOF when the parent dies, even while workers still exit
    worker_main(job)


def finish(crs: Course, job: Job, result: Result) -> None:
    """Merge, move the autograded notebooks (only notebooks) into the course, write the journal entry."""
    gradebook.merge(crs, job.assignment, job.student, result.notebooks, result.timestamp)
    result.merged = True
    dest = crs.root / "autograded" / job.student / job.assignment
    if dest.exists():
        shutil.rmtree(dest)
    if job.autograded.is_dir():
        dest.mkdir(parents=True)
        for path in sorted(job.autograded.iterdir()):
            if path.suffix == ".ipynb" or path.name == "timestamp.txt":
                shutil.move(str(path), dest / path.name)
    journal.write_entry(crs, job.assignment, result)


def _pending(crs: Course, assignment: str, wanted: list[str], force: bool) -> tuple[list[str], dict[str, Result]]:
    available = crs.students(assignment)
    results = {s: Result(s, "missing notebook", message=f"no folder submitted/{s}/{assignment}/")
               for s in wanted if s not in available}
    todo = [s for s in wanted if s in available]
    if force or not todo:
        return todo, results
    done = journal.journaled(crs, assignment) & gradebook.submitted_students(crs, assignment)
    for s in [s for s in todo if s in done]:
        entry = journal.read_entry(crs, assignment, s)
        results[s] = Result(s, "skipped", entry.get("score", 0.0), entry.get("max_score", 0.0),
                            message=f"already graded ({entry.get('status')}); --force to regrade")
    return [s for s in todo if s not in done], results


def grade(root: Path, assignment: str, students: list[str] | None = None, jobs: int | None = None,
          limits: Limits | None = None, db_url: str | None = None, force: bool = False, progress: bool = True,
          hard_timeout: float | None = None) -> dict[str, Result]:
    """Autograde the submissions of ``assignment`` in parallel; returns ``{student: Result}`` for every student
    considered (already graded ones with status ``skipped``). Raises ``KeyboardInterrupt`` after stopping the
    workers when interrupted, ``CourseError`` when the sandbox cannot run or another run holds the lock."""
    from tqdm.auto import tqdm

    crs = Course.load(root, db_url)
    course._check_assignment(crs.root, assignment)
    limits = limits or Limits()
    if limits.sandbox and not (probe := sandbox.probe())[0]:
        raise course.CourseError(f"cannot sandbox the students' kernels: {probe[1]}")
    jobs = max(1, jobs or os.cpu_count() or 1)
    if limits.threads <= 0:
        limits.threads = max(1, (os.cpu_count() or 1) // jobs)
    with journal.ClassLock(crs):
        todo, results = _pending(crs, assignment, students or crs.students(assignment), force)
        if not todo:
            return results
        n_notebooks = len(list(crs.source(assignment).glob("*.ipynb")))
        hard = hard_timeout or n_notebooks * (limits.timeout_notebook + 2 * limits.timeout_cell + 30) + 60
        work = Path(tempfile.mkdtemp(prefix=f"cnncourse-grade-{assignment}-"))
        janitor = start_janitor(work)
        try:
            _run(crs, assignment, todo, jobs, limits, hard, work, janitor, results, force, progress, tqdm)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            os.close(janitor)
    return results


def _give_up(crs: Course, job: Job, attempts: int) -> Result:
    return Result(job.student, "crashed", message=f"{attempts} earlier grading runs ended while grading this "
                  "submission; it is not tried again (--force to retry)")


def _run(crs, assignment, todo, jobs, limits, hard, work, janitor, results, force, progress, tqdm) -> None:
    gradebook.fast_alembic_version()
    template = gradebook.prepare(crs, assignment, work)
    extra = gradebook.extensions(crs, assignment)
    pending = deque(Job(crs, assignment, s, work / f"j{i}", template, limits,
                        journal.log_path(crs, assignment, s), extra.get(s)) for i, s in enumerate(todo))
    running: dict[int, tuple[multiprocessing.Process, Job, float]] = {}
    ctx = multiprocessing.get_context("fork")
    tqdm.monitor_interval = 0  # no monitor thread in a process that forks
    bar = tqdm(total=len(todo), desc=f"grading {assignment}", unit="sub", disable=not progress, dynamic_ncols=True)
    failures = 0

    def record(job: Job, result: Result) -> None:
        nonlocal failures
        finish(crs, job, result)
        results[job.student] = result
        failures += result.status != "graded"
        bar.set_postfix_str(f"not clean: {failures}", refresh=False)
        bar.update(1)

    def collect(proc, job: Job, started: float, killed: bool = False) -> None:
        if job.result_file.is_file() and not killed:
            import json

            record(job, Result(**json.loads(job.result_file.read_text())))
            return
        how = (f"grading was stopped after {hard:.0f} s" if killed else
               f"the worker died ({'signal ' + str(-proc.exitcode) if (proc.exitcode or 0) < 0 else 'exit ' + str(proc.exitcode)})")
        record(job, Result(job.student, "timed out" if killed else "crashed", seconds=time.monotonic() - started,
                           message=f"{how}; log: {job.log_file}"))

    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.popleft()
                earlier = journal.start_attempt(crs, assignment, job.student)
                if earlier >= journal.GIVE_UP_AFTER and not force:
                    record(job, _give_up(crs, job, earlier))
                    continue
                job.scratch.mkdir(mode=0o700)
                proc = ctx.Process(target=_run_worker, args=(job, janitor), daemon=False)
                proc.start()
                running[proc.sentinel] = (proc, job, time.monotonic())
            for sentinel in multiprocessing.connection.wait(list(running), timeout=0.5):
                proc, job, started = running.pop(sentinel)
                proc.join()
                collect(proc, job, started)
                shutil.rmtree(job.scratch, ignore_errors=True)
            now = time.monotonic()
            for sentinel, (proc, job, started) in list(running.items()):
                if now - started > hard:
                    procs.kill_tree(proc.pid)
                    proc.join()
                    running.pop(sentinel)
                    collect(proc, job, started, killed=True)
    except BaseException:
        for proc, _, _ in running.values():
            procs.kill_tree(proc.pid)
            proc.join()
        raise
    finally:
        bar.close()
