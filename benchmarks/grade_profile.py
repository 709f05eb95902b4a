"""Where one submission's grading time goes: a step-by-step breakdown of ``cnncourse grade``'s worker.

Builds a small synthetic class of a real assignment (the same submissions as ``grade_speed.py``: a full-mark
copy, a partial and a failing one), then grades each submission in this process exactly as a worker does
(``worker.grade_submission`` in the sandbox, merge, journal) with timers wrapped around every step:

* once per run: imports (nbgrader, the preprocessors, the oracle with torch) and the template gradebook;
* per submission: intake copy, gradebook copy, repair, nbgrader's converter set-up, every preprocessor
  (nbgrader's sanitising pass, ``PlaceCases``, ``SandboxedExecute``, ``CheckAnswers``, the score writers),
  inside ``SandboxedExecute`` the kernel start (sandbox + launcher), waiting for the kernel to be ready
  (ipykernel's imports), the setup cell (torch, numpy, cnncourse imports), the other cells and the kernel
  shutdown; reading the scores back, the merge into the class gradebook and the journal entry;
* the sandbox alone: ``python -c pass`` and ``python -c "import torch, numpy, cnncourse"`` with and without
  bubblewrap.

    python benchmarks/grade_profile.py                      # conv_arithmetic, 3 submissions
    python benchmarks/grade_profile.py --n 6 --out reports/grade_profile.json

Prints a table (mean seconds per submission, share of the worker's time) and writes it as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grade_speed import build_class, env_for, fresh_copy  # noqa: E402

from cnncourse import course  # noqa: E402


class Timers:
    """Accumulated wall seconds per step name for the submission being graded."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.current[name] += seconds

    def wrap(self, owner, attr: str, name) -> None:
        """Time every call of ``owner.attr`` (sync or async); ``name`` is a string or ``f(*args) -> str``."""
        original = getattr(owner, attr)
        label = name if callable(name) else (lambda *a, **k: name)
        timers = self

        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    timers.add(label(*args, **kwargs), time.perf_counter() - start)
        else:
            @functools.wraps(original)
            def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    timers.add(label(*args, **kwargs), time.perf_counter() - start)
        static = isinstance(inspect.getattr_static(owner, attr), staticmethod)
        setattr(owner, attr, staticmethod(timed) if static else timed)


def cell_label(execute, cell, resources, index) -> str:
    """``cell: setup`` for the first code cell (imports), ``cell: tests`` / ``cell: answers`` for the rest."""
    meta = cell.metadata.get("nbgrader", {})
    if cell.cell_type != "code" or not cell.source.strip():
        return "execute: other"
    if not getattr(execute, "_seen_code", False):
        execute._seen_code = True
        return "cell: setup (imports)"
    if meta.get("grade") and not meta.get("solution"):
        return "cell: tests (visible + hidden)"
    return "cell: answers and the rest"


def instrument(timers: Timers) -> None:
    """Wrap the grading steps (the modules stay patched for this process only)."""
    from nbconvert.preprocessors import Preprocessor
    from nbgrader.converters import Autograde

    from cnncourse.grader import execute, gradebook, hidden, intake, journal, kernel, repair, warm, worker

    timers.wrap(intake, "copy_submission", "intake: copy the submission")
    timers.wrap(repair, "repair_submission", "repair: rebuild the notebooks")
    timers.wrap(worker, "config_for", "nbgrader: config")
    timers.wrap(Autograde, "__init__", "nbgrader: converter set-up")
    timers.wrap(Autograde, "init_single_notebook_resources", "nbgrader: per-notebook gradebook set-up")
    timers.wrap(Autograde, "write_single_notebook", "nbgrader: write notebooks")

    def by_class(pp, *a, **k) -> str:  # nbgrader's sanitising pass and the autograde pass alike
        return f"preprocessor: {type(pp).__name__}"

    timers.wrap(Preprocessor, "__call__", by_class)
    timers.wrap(hidden, "load_oracle", "oracle: load oracle.py")
    timers.wrap(hidden, "student_cases", "oracle: draw the student's inputs")
    timers.wrap(hidden.CheckAnswers, "_check_all", "oracle: check the answers")
    timers.wrap(kernel.SandboxedKernelManager, "_async_pre_start_kernel", "kernel: sandbox set-up (inbox, bwrap args)")
    timers.wrap(warm, "spawn", "kernel: warm kernel forked into the sandbox (zygote)")
    # nbclient's sync aliases (run_sync of the async methods) are what setup_kernel calls
    timers.wrap(execute.SandboxedExecute, "start_new_kernel", "kernel: start (sandbox + launcher)")
    timers.wrap(execute.SandboxedExecute, "start_new_kernel_client", "kernel: wait until ready (ipykernel start-up)")
    timers.wrap(execute.SandboxedExecute, "_start_watch", "kernel: watchdog + guard install")
    timers.wrap(execute.SandboxedExecute, "preprocess_cell", cell_label)
    timers.wrap(execute.SandboxedExecute, "_cleanup_kernel", "kernel: shutdown")
    timers.wrap(gradebook, "collect", "gradebook: read the scores back")
    timers.wrap(gradebook, "merge", "gradebook: merge into the class gradebook")
    timers.wrap(journal, "write_entry", "journal: write the entry")


def sandbox_costs(repeat: int) -> dict[str, float]:
    """Median seconds of a bare and an importing Python, inside bubblewrap and outside."""
    from cnncourse.grader import sandbox

    out = {}
    bwrap = sandbox.bwrap_path()
    imports = "import torch, numpy, cnncourse, ipykernel.kernelapp"
    for label, code in (("python -c pass", "pass"), ("python: import torch, numpy, cnncourse, ipykernel", imports)):
        for where in ("outside", "in bwrap"):
            cmd = [sys.executable, "-c", code]
            if where == "in bwrap":
                if bwrap is None:
                    continue
                cmd = sandbox.base_args(bwrap, Path("/nonexistent"), 64) + ["--", *cmd]
            runs = []
            for _ in range(repeat):
                start = time.perf_counter()
                subprocess.run(cmd, check=True, env=sandbox.clean_env(1), capture_output=True)
                runs.append(time.perf_counter() - start)
            out[f"{label} ({where})"] = round(statistics.median(runs), 3)
    return out


def profile(root: Path, assignment: str, students: list[str],
            shared_verdicts: bool = True, warm: bool = True) -> tuple[dict, list[dict]]:
    """Grade ``students`` one after another in this process; returns (once-per-run timings, per-submission)."""
    from cnncourse.grader import gradebook, journal, scheduler, worker
    from cnncourse.grader.layout import Course
    from cnncourse.grader.limits import Limits

    import warnings

    warnings.simplefilter("ignore")  # as in a worker (PYTHONWARNINGS=ignore)
    os.environ["PYTHONWARNINGS"] = "ignore"
    once, timers = {}, Timers()
    start = time.perf_counter()
    crs = Course.load(root)
    scheduler.preload(crs, assignment)  # what the scheduler imports once before forking its workers
    once["scheduler.preload: preprocessors, oracle, torch"] = time.perf_counter() - start
    instrument(timers)
    work = Path(tempfile.mkdtemp(prefix="cnncourse-profile-"))
    if shared_verdicts:  # as cnncourse grade does for its workers (cnncourse.grader.verdicts)
        from cnncourse.grader import verdicts

        os.environ[verdicts.ENV_VAR] = str(work / "verdicts.sqlite")
    start = time.perf_counter()
    template = gradebook.prepare(crs, assignment, work)
    once["gradebook: template (generate_assignment)"] = time.perf_counter() - start
    worker.lighten_nbgrader()  # as every worker process does (here the merges below skip fsync too)
    per = []
    limits = Limits(warm_kernels=warm)
    limits.threads = 1
    socket_path = ""
    if warm:  # as cnncourse grade does: the run's zygote forks every kernel (cnncourse.grader.zygote)
        from cnncourse.grader import sandbox, warm

        start = time.perf_counter()
        source = sorted(crs.source(assignment).glob("*.ipynb"))
        proc = warm.start(work / "zygote.sock", warm.modules_of(source), sandbox.clean_env(1), work / "zygote.log")
        if not warm.ready(proc):
            raise SystemExit((work / "zygote.log").read_text())
        socket_path = str(work / "zygote.sock")
        once["zygote: start and import (in parallel with the preload in cnncourse grade)"] = time.perf_counter() - start
    for i, student in enumerate(students):
        timers.current = defaultdict(float)
        job = worker.Job(crs, assignment, student, work / f"j{i}", template, limits,
                         journal.log_path(crs, assignment, student), zygote=socket_path)
        job.scratch.mkdir(mode=0o700)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(job.scratch / "runtime")
        start = time.perf_counter()
        result = worker.grade_submission(job)
        timers.add("worker: grade_submission", time.perf_counter() - start)
        start = time.perf_counter()
        scheduler.finish(crs, job, result)
        timers.add("scheduler: finish (merge + move + journal)", time.perf_counter() - start)
        cur = timers.current
        cur["execute: the rest of SandboxedExecute"] = cur["preprocessor: SandboxedExecute"] - sum(
            v for k, v in cur.items() if k.startswith(("kernel:", "cell:", "execute:")))
        row = {k: round(v, 4) for k, v in cur.items()}
        row["_student"], row["_score"] = student, result.score
        per.append(row)
        print(f"  {student}: {result.status} {result.score}/{result.max_score} in "
              f"{row['worker: grade_submission']:.2f} s {result.message[:300]}", flush=True)
    return once, per


def table(once: dict, per: list[dict], sandbox: dict) -> str:
    steps = sorted({k for row in per for k in row if not k.startswith("_")})
    mean = {k: statistics.mean(row.get(k, 0.0) for row in per) for k in steps}
    total = mean["worker: grade_submission"] + mean.get("scheduler: finish (merge + move + journal)", 0.0)
    lines = [f"{'step (mean over ' + str(len(per)) + ' submissions)':<62} {'s':>7} {'share':>6}"]
    for k in sorted(steps, key=lambda k: -mean[k]):
        lines.append(f"{k:<62} {mean[k]:7.3f} {100 * mean[k] / total:5.1f}%")
    lines.append(f"{'= per submission (grade_submission + finish)':<62} {total:7.3f}")
    lines.append("(the first submission of a process pays one-time costs: see per_submission in the JSON)")
    lines.append("once per run:")
    lines += [f"  {k:<60} {v:7.3f}" for k, v in once.items()]
    lines.append("sandbox alone (median):")
    lines += [f"  {k:<60} {v:7.3f}" for k, v in sandbox.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="conv_arithmetic")
    parser.add_argument("--n", type=int, default=3, help="submissions profiled (default 3: full, partial, failing)")
    parser.add_argument("--no-shared-verdicts", action="store_true",
                        help="check every answer with the oracle (as before verdicts were shared in a run)")
    parser.add_argument("--cold", action="store_true", help="start every kernel cold (no zygote), as before")
    parser.add_argument("--out", help="JSON report (default reports/grade_profile.json in the course)")
    args = parser.parse_args(argv)
    repo = course.find_root()
    out = Path(args.out) if args.out else repo / "reports" / "grade_profile.json"
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cnncourse-grade-profile-") as tmp:
        base, kinds = build_class(repo, args.assignment, args.n, Path(tmp))
        root = fresh_copy(base, Path(tmp) / "run", args.assignment)
        os.environ.update({k: v for k, v in env_for(root).items() if k.startswith("CNNCOURSE")})
        print(f"profiling {args.n} submissions of {args.assignment} (load average {load[0]:.2f})", flush=True)
        once, per = profile(root, args.assignment, sorted(kinds), not args.no_shared_verdicts, not args.cold)
    sandbox = sandbox_costs(3)
    text = table(once, per, sandbox)
    print(text)
    report = {"assignment": args.assignment, "kinds": kinds, "shared_verdicts": not args.no_shared_verdicts,
              "warm_kernels": not args.cold,
              "once": once, "per_submission": per,
              "sandbox": sandbox, "load_average": load, "load_average_after": os.getloadavg(),
              "cpu_count": os.cpu_count(), "machine": platform.platform(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "table": text.splitlines()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
