"""Sequential ``nbgrader autograde`` vs ``cnncourse grade --jobs N`` on the same synthetic class.

The sequential baseline is stock nbgrader (its own ``Execute``, no sandbox); ``cnncourse grade`` runs every
kernel in the bubblewrap sandbox. Builds N synthetic submissions of a real assignment (a mix of full-mark copies of the source notebook,
partial ones with only the first half of the solution cells filled in, and untouched released notebooks that
fail), grades one copy of the class with ``nbgrader autograde ASSIGNMENT`` (one process, one submission after
another) and another copy with ``cnncourse grade ASSIGNMENT --jobs N``, checks that every student gets the
same score for every cell from both, prints the speed-up and writes it to ``reports/grade_speed.json``.

    python benchmarks/grade_speed.py                       # conv_arithmetic, 20 submissions, --jobs 2
    python benchmarks/grade_speed.py --repeat 2            # alternate the two runs, report the median ratio
    taskset -c 0,1 python benchmarks/grade_speed.py        # the same on 2 cores of a bigger machine

Both runs start from the same state: the assignment already in the run's gradebook (not timed); each timed run
is the whole command as an instructor types it (interpreter start-up included). Exit status 1 when the
scores differ.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="conv_arithmetic")
    parser.add_argument("--n", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs, alternating (default 1)")
    parser.add_argument("--out", help="JSON report (default reports/grade_speed.json in the course)")
    args = parser.parse_args(argv)

    repo = course.find_root()
    out = Path(args.out) if args.out else repo / "reports" / "grade_speed.json"
    runs = []
    with tempfile.TemporaryDirectory(prefix="cnncourse-grade-speed-") as tmp:
        work = Path(tmp)
        base, kinds = build_class(repo, args.assignment, args.n, work)
        print(f"{args.n} submissions of {args.assignment}: "
              + ", ".join(f"{sum(k == v for k in kinds.values())} {v}" for v in ("full", "partial", "failing")))
        for r in range(args.repeat):
            seq = fresh_copy(base, work / f"seq{r}", args.assignment, stock=True)
            par = fresh_copy(base, work / f"par{r}", args.assignment)
            order = ["seq", "par"] if r % 2 == 0 else ["par", "seq"]
            times, cpu = {}, {}
            for which in order:
                load = os.getloadavg()[0]
                if which == "seq":
                    times["seq"], cpu["seq"], _ = timed([sys.executable, "-m", "nbgrader", "autograde", args.assignment,
                                             "--force", "--log-level=ERROR"], seq)
                else:
                    times["par"], cpu["par"], proc = timed([sys.executable, "-m", "cnncourse.cli", "--root", str(par), "grade",
                                                args.assignment, "--jobs", str(args.jobs), "--force",
                                                "--no-progress"], par)
                label = "sequential nbgrader autograde" if which == "seq" else f"cnncourse grade --jobs {args.jobs}"
                print(f"  run {r + 1}: {label}: {times[which]:.1f} s wall, {cpu[which]:.1f} s CPU "
                      f"(load average before: {load:.2f})")
            seq_scores, par_scores = cell_scores(seq, args.assignment), cell_scores(par, args.assignment)
            runs.append({"sequential_s": round(times["seq"], 2), "parallel_s": round(times["par"], 2),
                         "sequential_cpu_s": round(cpu["seq"], 2), "parallel_cpu_s": round(cpu["par"], 2),
                         "load_before": load,
                         "ratio": round(times["seq"] / times["par"], 3), "identical": seq_scores == par_scores,
                         "scores": {s: v["total"] for s, v in sorted(seq_scores.items())},
                         "differences": {s: {"nbgrader": seq_scores.get(s), "cnncourse": par_scores.get(s)}
                                         for s in sorted(set(seq_scores) | set(par_scores))
                                         if seq_scores.get(s) != par_scores.get(s)}})
    ratio = statistics.median(r["ratio"] for r in runs)
    identical = all(r["identical"] for r in runs) and all(len(r["scores"]) == args.n for r in runs)
    report = {"assignment": args.assignment, "submissions": args.n, "jobs": args.jobs, "kinds": kinds,
              "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
              "machine": platform.platform(), "python": platform.python_version(),
              "runs": runs, "median_ratio": round(ratio, 3), "identical_scores": identical,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"speed-up of cnncourse grade --jobs {args.jobs} over sequential nbgrader autograde: {ratio:.2f}x "
          f"(median of {len(runs)}); scores identical: {identical}; report: {out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
