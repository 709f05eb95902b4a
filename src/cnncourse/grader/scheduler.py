"""``cnncourse grade``: every submission of an assignment through a worker process, N at a time.

One run holds the class lock (``journal.ClassLock``), makes a template gradebook once, and forks one worker
per submission (``worker.py``). When a worker finishes, its grades are merged into the class gradebook in one
transaction, only its autograded notebooks are moved into ``autograded/``, and a journal entry is written; a
worker that dies or runs past the hard limit is recorded as crashed / timed out with 0 points, and the run
goes on. A run that is interrupted keeps everything merged so far; the next run skips journaled students
(``--force`` regrades). A janitor process removes the run's scratch folder even when the run is killed.
"""
from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from cnncourse import course
from cnncourse.grader import gradebook, journal, procs, sandbox, verdicts, warm
from cnncourse.grader.layout import Course
from cnncourse.grader.limits import Limits
from cnncourse.grader.result import Result
from cnncourse.grader.worker import Job, worker_main


def scratch_prefix(crs: Course, assignment: str) -> str:
    """Name prefix of a run's scratch folder in the system's temp folder (one per course and assignment)."""
    return f"cnncourse-grade-{assignment}-{hashlib.sha1(str(crs.root).encode()).hexdigest()[:8]}-"


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


def finish(crs: Course, job: Job, result: Result, gb=None) -> None:
    """Merge (into ``gb`` when given), move the autograded notebooks (only notebooks) into the course, write
    the journal entry."""
    gradebook.merge(crs, job.assignment, job.student, result.notebooks, result.timestamp, gb)
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
          hard_timeout: float | None = None, scheduler: Any = None,
          zygote: warm.Zygote | None = None) -> dict[str, Result]:
    """Autograde the submissions of ``assignment`` in parallel; returns ``{student: Result}`` for every student
    considered (already graded ones with status ``skipped``). Raises ``KeyboardInterrupt`` after stopping the
    workers when interrupted, ``CourseError`` when the sandbox cannot run or another run holds the lock.
    ``scheduler`` (a Dask scheduler address, cluster or Client) grades on that Dask cluster instead of local
    worker processes (``dask_backend``); the sandbox then has to run on the Dask workers' hosts. ``zygote``:
    the run's warm-kernel zygote when the caller started it early (``warm.prestart``); it is closed here."""
    try:
        return _grade(root, assignment, students, jobs, limits, db_url, force, progress, hard_timeout, scheduler,
                      zygote)
    finally:
        if zygote is not None:
            zygote.close()


def _grade(root, assignment, students, jobs, limits, db_url, force, progress, hard_timeout, scheduler, zygote):
    """``grade`` itself; ``grade`` closes the caller's zygote however this ends."""
    crs = Course.load(root, db_url)
    course._check_assignment(crs.root, assignment)
    limits = limits or Limits()
    if limits.sandbox and scheduler is None and not (probe := sandbox.probe())[0]:
        raise course.CourseError(f"cannot sandbox the students' kernels: {probe[1]}")
    jobs = max(1, jobs or os.cpu_count() or 1)
    limits.threads = limits.kernel_threads(jobs)
    with journal.ClassLock(crs):
        gradebook.ensure_schema(crs)  # a new class gradebook's tables, made by one run at a time
        todo, results = _pending(crs, assignment, students or crs.students(assignment), force)
        if not todo:
            return results
        n_notebooks = len(list(crs.source(assignment).glob("*.ipynb")))
        hard = hard_timeout or n_notebooks * (limits.timeout_notebook + 2 * limits.timeout_cell + 30) + 60
        work = Path(tempfile.mkdtemp(prefix=scratch_prefix(crs, assignment)))
        janitor = start_janitor(work)
        os.environ[verdicts.ENV_VAR] = str(work / "verdicts.sqlite")  # the workers' shared oracle verdicts
        try:
            if scheduler is not None:
                from cnncourse.grader.dask_backend import DaskGradingRun

                DaskGradingRun(crs, assignment, limits, work, janitor, hard, force, results).run_on(
                    scheduler, todo, progress, workers=jobs)
            else:
                GradingRun(crs, assignment, limits, work, janitor, hard, force, results).run(todo, jobs, progress,
                                                                                         zygote)
        finally:
            os.environ.pop(verdicts.ENV_VAR, None)
            shutil.rmtree(work, ignore_errors=True)
            os.close(janitor)
    return results


def preload(crs: Course, assignment: str) -> None:
    """Import what every worker needs once, before forking them: the configured preprocessors and the
    assignment's oracle (torch), so each worker starts warm instead of importing them again."""
    import nbformat
    from traitlets.utils.importstring import import_item

    import cnncourse.grader.execute  # noqa: F401
    from cnncourse.grader import cases
    from cnncourse.grader.kernel import SandboxedKernelManager

    section = crs.config.Autograde if "Autograde" in crs.config else {}
    for name in section.get("autograde_preprocessors", []):
        if isinstance(name, str):
            import_item(name)
    cases.load_oracle(crs.root, assignment)  # never run in this process: torch's thread pool must not start
    SandboxedKernelManager(kernel_name="python3").kernel_spec  # noqa: B018 (looked up once, inherited)
    for path in sorted(crs.source(assignment).glob("*.ipynb")):  # nbformat compiles a validator per schema and
        nb = nbformat.read(path, as_version=4)  # process (50 ms); nbconvert validates after every preprocessor
        for relaxed in (False, True):
            nbformat.validate(nb, relax_add_props=relaxed)


class GradingRun:
    """One run's worker pool: launches a worker per student, collects and records what each produced."""

    def __init__(self, crs: Course, assignment: str, limits: Limits, work: Path, janitor: int, hard: float,
                 force: bool, results: dict[str, Result]):
        self.crs, self.assignment, self.limits, self.work = crs, assignment, limits, work
        self.janitor, self.hard, self.force, self.results = janitor, hard, force, results
        self.running: dict[int, tuple[multiprocessing.Process, Job, float]] = {}
        self.failures = 0
        self.bar = None
        self.gb = None  # the class gradebook, opened at the first merge and kept for the run

    def run(self, todo: list[str], jobs: int, progress: bool, zygote: warm.Zygote | None = None) -> None:
        """Grade ``todo`` with at most ``jobs`` workers at once (results land in ``self.results``), warm kernels
        from ``zygote`` (else from a zygote started now)."""
        zygote = zygote or self.start_zygote()  # first: it imports on another core while this process preloads
        try:
            self._run(todo, jobs, progress, zygote)
        finally:
            if zygote is not None:
                zygote.close()
            if self.gb is not None:
                self.gb.close()

    def start_zygote(self) -> warm.Zygote | None:
        """The run's kernel zygote (``zygote.py``), or None for cold kernels (no sandbox, or turned off)."""
        return warm.prestart(self.crs.source(self.assignment), self.limits, jobs=None)  # threads set by grade()

    def _run(self, todo: list[str], jobs: int, progress: bool, zygote) -> None:
        from tqdm.auto import tqdm

        maker = self.fork_template()  # on another core while this process preloads
        preload(self.crs, self.assignment)
        template = self.wait_template(maker)
        gc.freeze()  # the workers' collector leaves the preloaded objects alone: no scan, no copied pages
        extra = gradebook.extensions(self.crs, self.assignment)
        socket_path = zygote.socket() if zygote is not None else ""
        if zygote is not None and not socket_path:
            log = zygote.log.read_text(errors="replace")[-500:]
            print(f"warning: the kernel zygote did not start, every kernel starts cold: {log}", file=sys.stderr)
        pending = deque(Job(self.crs, self.assignment, s, self.work / f"j{i}", template, self.limits,
                            journal.log_path(self.crs, self.assignment, s), extra.get(s), socket_path)
                        for i, s in enumerate(todo))
        tqdm.monitor_interval = 0  # no monitor thread in a process that forks
        self.bar = tqdm(total=len(todo), desc=f"grading {self.assignment}", unit="sub", disable=not progress,
                        dynamic_ncols=True)
        try:
            while pending or self.running:
                while pending and len(self.running) < jobs:
                    self.launch(pending.popleft())
                done = [self.running.pop(s) for s in multiprocessing.connection.wait(list(self.running), 0.5)]
                while pending and len(self.running) < jobs:  # the next workers start before the merges
                    self.launch(pending.popleft())
                for proc, job, started in done:
                    proc.join()
                    self.collect(proc, job, started)
                now = time.monotonic()
                for sentinel, (proc, job, started) in list(self.running.items()):
                    if now - started > self.hard:
                        procs.kill_tree(proc.pid)
                        proc.join()
                        self.running.pop(sentinel)
                        self.collect(proc, job, started, killed=True)
        except BaseException:
            for proc, _, _ in self.running.values():
                procs.kill_tree(proc.pid)
                proc.join()
            raise
        finally:
            self.bar.close()

    def fork_template(self) -> int:
        """Make the workers' template gradebook (``gradebook.prepare``) in a child process; its pid."""
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                gradebook.prepare(self.crs, self.assignment, self.work)
                code = 0
            except BaseException as exc:  # the parent raises it
                (self.work / "template.error").write_text(str(exc) or type(exc).__name__)
            finally:
                os._exit(code)
        return pid

    def wait_template(self, pid: int) -> Path:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            error = self.work / "template.error"
            raise course.CourseError(error.read_text() if error.exists() else "making the template gradebook failed")
        return self.work / "template" / "gradebook.db"

    def launch(self, job: Job) -> None:
        """Start a worker for ``job`` unless earlier runs ended while grading it (then record it as crashed)."""
        earlier = journal.start_attempt(self.crs, self.assignment, job.student)
        if earlier >= journal.GIVE_UP_AFTER and not self.force:
            self.record(job, Result(job.student, "crashed", message=f"{earlier} earlier grading runs ended while "
                                    "grading this submission; it is not tried again (--force to retry)"))
            return
        job.scratch.mkdir(mode=0o700)
        proc = multiprocessing.get_context("fork").Process(target=_run_worker, args=(job, self.janitor))
        proc.start()
        self.running[proc.sentinel] = (proc, job, time.monotonic())

    def collect(self, proc, job: Job, started: float, killed: bool = False) -> None:
        """Record the worker's result, or a crashed / timed-out result (0 points) when it left none."""
        if job.result_file.is_file() and not killed:
            result = Result(**json.loads(job.result_file.read_text()))
        else:
            code = proc.exitcode or 0
            how = (f"grading was stopped after {self.hard:.0f} s" if killed else
                   f"the worker died ({f'signal {-code}' if code < 0 else f'exit {code}'})")
            result = Result(job.student, "timed out" if killed else "crashed", seconds=time.monotonic() - started,
                            message=f"{how}; log: {job.log_file}")
        self.record(job, result)
        shutil.rmtree(job.scratch, ignore_errors=True)

    def record(self, job: Job, result: Result) -> None:
        if self.gb is None:
            from nbgrader.api import Gradebook

            self.gb = Gradebook(self.crs.db_url, self.crs.course_id)
        finish(self.crs, job, result, self.gb)
        self.results[job.student] = result
        self.failures += result.status != "graded"
        self.bar.set_postfix_str(f"not clean: {self.failures}", refresh=False)
        self.bar.update(1)
