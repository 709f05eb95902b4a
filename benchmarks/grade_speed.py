"""Sequential ``nbgrader autograde`` vs ``cnncourse grade --jobs 1``, ``--jobs 2`` and ``--scheduler`` (a Dask
``LocalCluster`` of 2 worker processes) on the same synthetic class, in one run.

The sequential baseline is stock nbgrader (its own ``Execute``, no sandbox); every ``cnncourse grade`` run puts
every kernel in the bubblewrap sandbox. Builds N synthetic submissions of a real assignment (a mix of full-mark
copies of the source notebook, partial ones with only the first half of the solution cells filled in, and
untouched released notebooks that fail), grades a fresh copy of the class with each command, checks that
every student gets the same score for every cell from all of them, and reports wall and CPU seconds, seconds
per submission, submissions per minute and the speed-up over nbgrader (``reports/grade_speed.json``). From
the measured per-submission cost it estimates a class of 1,000 on 16 workers.

    python benchmarks/grade_speed.py                       # conv_arithmetic, 20 submissions
    python benchmarks/grade_speed.py --only nbgrader jobs2 # a subset of the runs
    taskset -c 0,1 python benchmarks/grade_speed.py        # the same on 2 cores of a bigger machine

Each run starts from the same state: the assignment already in the run's gradebook (not timed); each timed run
is the whole command as an instructor types it (interpreter start-up included; the Dask cluster is started
before, as a class's cluster would be). Exit status 1 when the scores differ.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from cnncourse import course


def solution_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]


def variant(source, released, kind: str):
    """``full``: the reference solution; ``failing``: the released stubs; ``partial``: the first half of
    the solution cells answered."""
    if kind == "full":
        return copy.deepcopy(source)
    nb = copy.deepcopy(released)
    if kind == "partial":
        ids = solution_ids(source)
        answer = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") in ids[: max(1, len(ids) // 2)]}
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in answer:
                cell.source = answer[gid]
    return nb


def env_for(root: Path) -> dict[str, str]:
    env = course.nbgrader_env()
    env["CNNCOURSE_DB"] = f"sqlite:///{root / 'gradebook.db'}"
    env["CNNCOURSE_SECRET"] = "grade-speed-benchmark"  # both runs derive the same per-student hidden inputs
    env.pop("CNNCOURSE_ROOT", None)
    return env


# The baseline is stock nbgrader: its own Execute (no sandbox, no limits) in place of the course's
# SandboxedExecute, so the sandbox's cost counts against cnncourse grade only.
STOCK_EXECUTE = """
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute" if p == "cnncourse.grader.execute.SandboxedExecute" else p
    for p in c.Autograde.autograde_preprocessors]
"""


def build_class(repo: Path, assignment: str, n: int, work: Path) -> tuple[Path, dict[str, str]]:
    base = work / "base"
    (base / course.SOURCE_DIR).mkdir(parents=True)
    shutil.copy2(repo / course.CONFIG_FILE, base / course.CONFIG_FILE)
    shutil.copytree(repo / course.SOURCE_DIR / assignment, base / course.SOURCE_DIR / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    released_dir = course.generate(base, assignment, work / "release")
    kinds = {}
    for i in range(n):
        student = f"student{i:02d}"
        kind = ("full", "partial", "failing")[i % 3]
        kinds[student] = kind
        folder = base / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
        for src in sorted((base / course.SOURCE_DIR / assignment).glob("*.ipynb")):
            source = nbformat.read(src, as_version=4)
            released = nbformat.read(released_dir / src.name, as_version=4)
            nbformat.write(variant(source, released, kind), folder / src.name)
    return base, kinds


def fresh_copy(base: Path, dest: Path, assignment: str, stock: bool = False) -> Path:
    shutil.copytree(base, dest)
    if stock:
        with open(dest / course.CONFIG_FILE, "a") as config:
            config.write(STOCK_EXECUTE)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
                    "--log-level=ERROR"], cwd=dest, env=env_for(dest), check=True, capture_output=True)
    shutil.rmtree(dest / course.RELEASE_DIR, ignore_errors=True)
    return dest


def cpu_children() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def timed(cmd: list[str], root: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and CPU seconds (the command and every process it started and reaped: kernels, workers)."""
    cpu, start = cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env_for(root), capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, cpu_children() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, cpu, proc


def cell_scores(root: Path, assignment: str) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        out = {}
        for sub in gb.assignment_submissions(assignment):
            cells = {f"{nb.name}:{g.name}": g.score for nb in sub.notebooks for g in nb.grades}
            cells["total"] = sub.score
            out[sub.student.id] = cells
    return out


RUNS = ("nbgrader", "jobs1", "jobs2", "dask2")
LABELS = {"nbgrader": "sequential nbgrader autograde", "jobs1": "cnncourse grade --jobs 1",
          "jobs2": "cnncourse grade --jobs 2", "dask2": "cnncourse grade --scheduler (LocalCluster, 2 workers)"}


def command(which: str, assignment: str, root: Path, scheduler: str | None) -> list[str]:
    if which == "nbgrader":
        return [sys.executable, "-m", "nbgrader", "autograde", assignment, "--force", "--log-level=ERROR"]
    cmd = [sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", assignment, "--force",
           "--no-progress"]
    return cmd + (["--scheduler", scheduler] if which == "dask2" else ["--jobs", which[-1]])


def estimate(runs: dict, n: int, merge_s: float | None) -> dict:
    """1,000 submissions on 16 workers from the measured per-submission cost of one worker (--jobs 1)."""
    per = runs["jobs1"]["wall_s"] / n if "jobs1" in runs else None
    if per is None:
        return {}
    out = {"per_submission_one_worker_s": round(per, 3),
           "hours_1000_on_16_workers": round(1000 * per / 16 / 3600, 3),
           "minutes_1000_on_16_workers": round(1000 * per / 16 / 60, 1)}
    if merge_s:
        out["client_merge_s_per_submission"] = round(merge_s, 4)
        out["workers_before_the_merge_limits"] = int(per / merge_s)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="conv_arithmetic")
    parser.add_argument("--n", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--only", nargs="*", choices=RUNS, default=list(RUNS), help="runs to do (default all)")
    parser.add_argument("--profile", help="grade_profile.py JSON giving the client's merge cost (default "
                                          "benchmarks/results/grade_profile.json when present)")
    parser.add_argument("--out", help="JSON report (default reports/grade_speed.json in the course)")
    args = parser.parse_args(argv)

    repo = course.find_root()
    out = Path(args.out) if args.out else repo / "reports" / "grade_speed.json"
    runs: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    cluster = None
    with tempfile.TemporaryDirectory(prefix="cnncourse-grade-speed-") as tmp:
        work = Path(tmp)
        base, kinds = build_class(repo, args.assignment, args.n, work)
        print(f"{args.n} submissions of {args.assignment}: "
              + ", ".join(f"{sum(k == v for k in kinds.values())} {v}" for v in ("full", "partial", "failing")))
        try:
            for which in args.only:
                root = fresh_copy(base, work / which, args.assignment, stock=which == "nbgrader")
                address = None
                if which == "dask2":
                    from distributed import LocalCluster

                    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=50)
                    address = cluster.scheduler_address
                load = os.getloadavg()
                wall, cpu, _ = timed(command(which, args.assignment, root, address), root)
                runs[which] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_before": load,
                               "load_after": os.getloadavg(), "s_per_submission": round(wall / args.n, 3),
                               "submissions_per_minute": round(60 * args.n / wall, 2)}
                scores[which] = cell_scores(root, args.assignment)
                print(f"  {LABELS[which]}: {wall:.1f} s wall ({wall / args.n:.2f} s/submission, "
                      f"{60 * args.n / wall:.1f}/min), {cpu:.1f} s CPU of reaped children "
                      f"(load average before {load[0]:.2f}, after {runs[which]['load_after'][0]:.2f})", flush=True)
        finally:
            if cluster is not None:
                cluster.close()
    reference = next(iter(scores.values()))
    identical = all(v == reference for v in scores.values()) and all(len(v) == args.n for v in scores.values())
    if "nbgrader" in runs:
        for which, run in runs.items():
            run["speedup_over_nbgrader"] = round(runs["nbgrader"]["wall_s"] / run["wall_s"], 3)
    profile = Path(args.profile) if args.profile else repo / "benchmarks" / "results" / "grade_profile.json"
    merge_s = None
    if profile.is_file():
        rows = json.loads(profile.read_text())["per_submission"]
        merge_s = statistics.mean(r.get("scheduler: finish (merge + move + journal)", 0.0) for r in rows)
    report = {"assignment": args.assignment, "submissions": args.n, "kinds": kinds, "runs": runs,
              "identical_scores": identical, "scores": {s: v["total"] for s, v in sorted(reference.items())},
              "differences": {which: {s: v.get(s) for s in v if v.get(s) != reference.get(s)}
                              for which, v in scores.items() if v != reference},
              "estimate": estimate(runs, args.n, merge_s),
              "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
              "machine": platform.platform(), "python": platform.python_version(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for which, run in runs.items():
        print(f"{LABELS[which]:<58} {run['s_per_submission']:6.2f} s/sub {run['submissions_per_minute']:6.1f}/min "
              f"x{run.get('speedup_over_nbgrader', float('nan')):.2f}")
    if report["estimate"]:
        e = report["estimate"]
        print(f"1,000 submissions on 16 workers: about {e['minutes_1000_on_16_workers']} min "
              f"({e['per_submission_one_worker_s']} s per submission per worker)"
              + (f"; the client's merge ({e['client_merge_s_per_submission']} s each) limits scaling beyond "
                 f"~{e['workers_before_the_merge_limits']} workers" if merge_s else ""))
    print(f"scores identical: {identical}; report: {out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
