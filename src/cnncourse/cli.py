"""The ``cnncourse`` command: ``lab``, ``doctor``, ``release``, ``validate``, ``grade``, ``feedback``, ``export``,
``report`` (the grading commands call :mod:`cnncourse.grader`). Run ``cnncourse COMMAND --help`` for each."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cnncourse import course


def _root(args: argparse.Namespace) -> Path:
    return course.find_root(args.root)


LAB_START_TIMEOUT_S = 120  # a first start on a busy 2-core machine builds caches


def _has_display() -> bool:
    """Whether a web browser could open a window here (always on macOS/Windows; X11 or Wayland on Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _free_port(host: str, preferred: int) -> int:
    """``preferred`` when it is free on ``host``, else the next free one (up to 100 above), else any."""
    for port in [*range(preferred, preferred + 100), 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free TCP port on {host}")


def _wait_until_serving(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """Poll ``url`` until the server answers (True), the process exits or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except (OSError, ValueError):
            time.sleep(0.5)
    return False


def cmd_lab(args: argparse.Namespace) -> int:
    """Start JupyterLab on the course and print the address to open (blocks until stopped with Ctrl-C).

    As root (most containers) it passes ``--allow-root``; without a display it opens no browser."""
    root = _root(args)
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    port = _free_port(args.ip, args.port)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ip={args.ip}",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           # quiet start-up: our one line gives the address; warnings and errors still show
           "--ServerApp.log_level=WARN", "--LabApp.log_level=WARN"]
    notes = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
        notes.append("running as root, so JupyterLab gets --allow-root")
    if args.no_browser or not _has_display():
        cmd.append("--no-browser")
        notes.append("no browser opened" + ("" if args.no_browser else " (no display)"))
    cmd += args.jupyter_args
    host = "127.0.0.1" if args.ip in ("127.0.0.1", "localhost", "0.0.0.0", "") else args.ip
    url = f"http://{host}:{port}/lab?token={token}"
    print(f"Starting JupyterLab on {root}" + (f"; {'; '.join(notes)}" if notes else ""), flush=True)
    proc = subprocess.Popen(cmd, cwd=root, env=course.nbgrader_env())
    # `kill` or a container stop sends SIGTERM to us: pass it on so the server and its kernels stop too.
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
    try:
        if _wait_until_serving(proc, f"http://{host}:{port}/api", LAB_START_TIMEOUT_S):
            print(f"\nThe course is ready: open {url}   (stop with Ctrl-C)\n", flush=True)
        elif proc.poll() is None:
            print(f"JupyterLab did not answer within {LAB_START_TIMEOUT_S} s; it may still come up at {url}",
                  file=sys.stderr, flush=True)
        return proc.wait()
    except KeyboardInterrupt:  # stop the server (and its kernels) cleanly, without its y/n prompt
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report versions, the compute device and the course set-up; exit 1 when something needs fixing."""
    problems: list[str] = []
    print(f"python      {platform.python_version()} ({sys.executable})")
    for dist in ("cnncourse", "torch", "numpy", "nbgrader", "jupyterlab", "notebook", "ipywidgets", "ipympl"):
        version = _version(dist)
        print(f"{dist:<11} {version}")
        if version == "not installed":
            problems.append(f"{dist} is not installed: run `make setup` (or pip install -c constraints.txt -e .)")
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s))"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps (Apple GPU)"
        else:
            device = f"cpu ({os.cpu_count()} cores; no GPU found, lectures use the CPU)"
        print(f"device      {device}")
    except Exception as exc:  # a broken torch install must be reported, not crash the doctor
        problems.append(f"torch does not import ({exc}); reinstall with `make setup`")
    from cnncourse.grader import sandbox

    works, how = sandbox.probe()
    print(f"grading     {'sandboxed: ' + how if works else 'NO SANDBOX: ' + how}")
    if not works:
        problems.append(f"student kernels cannot be sandboxed ({how}); `cnncourse grade` needs --no-sandbox here")
    if shutil.which("alembic") is None:
        problems.append("`alembic` is not on PATH, so nbgrader cannot create its gradebook: activate the venv "
                        "(`source .venv/bin/activate`) or use the make targets")
    try:
        root = _root(args)
        print(f"course      {root} (nbgrader config: {root / course.CONFIG_FILE})")
        names = course.assignment_names(root)
        print(f"assignments {', '.join(names) or 'none'}")
        for name in names:
            stale = course.release_check(root, name)
            problems += [f"{s} — run `cnncourse release {name}`" for s in stale]
    except course.CourseError as exc:
        problems.append(str(exc))
    if problems:
        print("\nProblems:", *(f"  - {p}" for p in problems), sep="\n")
        return 1
    print("\nAll good.")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """Generate student versions from solutions/ into assignments/ (or check they are up to date)."""
    root = _root(args)
    if args.all == bool(args.assignment):
        print("error: name one ASSIGNMENT or pass --all", file=sys.stderr)
        return 2
    names = course.assignment_names(root) if args.all else [args.assignment]
    status = 0
    for name in names:
        if args.check:
            stale = course.release_check(root, name)
            for s in stale:
                print(f"stale: {s}")
            print(f"{name}: {'out of date — run `cnncourse release ' + name + '`' if stale else 'in sync'}")
            status |= bool(stale)
        else:
            files = course.release(root, name)
            print(f"{name}: released {', '.join(files)} into {course.RELEASE_DIR}/{name}/")
    return status


def cmd_validate(args: argparse.Namespace) -> int:
    """Run a notebook and print pass/fail for each graded cell; exit 1 if any fails."""
    from cnncourse.grader.validate import validate

    results = validate(Path(args.path), timeout=args.timeout)
    if not results:
        print(f"{args.path}: no graded cells found")
        return 1
    width = max(len(r.grade_id) for r in results)
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        line = f"{mark}  {r.grade_id:<{width}}  {r.points:g}/{r.max_points:g}"
        print(line + (f"  {r.message}" if r.message and not r.passed else ""))
    total = sum(r.points for r in results)
    maximum = sum(r.max_points for r in results)
    failed = sum(not r.passed for r in results)
    print(f"\n{total:g}/{maximum:g} points from visible checks; {failed} of {len(results)} graded cells failing"
          " (hidden tests run only when the instructor grades)")
    return 1 if failed else 0


NO_SANDBOX_WARNING = """\
WARNING: --no-sandbox: student code runs as YOUR user with YOUR view of the disk. A submission can read
solutions/ (hidden tests, reference answers), the gradebook and other students' work, change or delete them,
and leave processes running. Use it only for trusted notebooks (your own solutions) or on a throwaway machine.
"""


def cmd_grade(args: argparse.Namespace) -> int:
    """Autograde every submitted/<student>/<ASSIGNMENT>/ in parallel, each kernel in a sandbox."""
    from cnncourse.grader import warm
    from cnncourse.grader.limits import Limits

    if args.no_sandbox:
        print(NO_SANDBOX_WARNING, file=sys.stderr)
    limits = Limits(timeout_cell=args.timeout_cell, timeout_notebook=args.timeout_notebook, memory_mb=args.memory,
                    max_procs=args.max_procs, threads=args.threads, file_mb=args.max_file, disk_mb=args.disk,
                    submission_mb=args.max_submission,
                    sandbox=not args.no_sandbox, warm_kernels=not args.cold_kernels)
    root = _root(args)
    # the kernels' zygote imports torch on another core while this process imports nbgrader and torch
    zygote = None if args.scheduler else warm.prestart(root / course.SOURCE_DIR / args.assignment, limits, args.jobs)
    from cnncourse.grader.result import summary_table
    from cnncourse.grader.scheduler import grade

    try:
        results = grade(root, args.assignment, students=args.student or None, jobs=args.jobs, limits=limits,
                        db_url=args.db, force=args.force, progress=not args.no_progress, scheduler=args.scheduler,
                        zygote=zygote)
    except KeyboardInterrupt:
        print("\nInterrupted: submissions finished so far are in the gradebook; run the same command again to "
              "continue where it stopped.", file=sys.stderr)
        return 130
    if not results:
        print(f"no submissions of {args.assignment} in submitted/<student>/{args.assignment}/")
        return 1
    print(summary_table(results))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Write HTML feedback (scores, the student's code, test results; never hidden tests or solutions)."""
    from cnncourse.grader.feedback import feedback

    root = _root(args)
    run = feedback(root, args.assignment, students=args.student or None, db_url=args.db)
    for f in run.written:
        print(f.relative_to(root))
    for problem in run.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"{len(run.written)} feedback file(s) in feedback/<student>/{args.assignment}/"
          + (f"; {len(run.problems)} student(s) without feedback (see above)" if run.problems else ""))
    return 0 if run.written and not run.problems else 1


def cmd_export(args: argparse.Namespace) -> int:
    """Export grades: one row per student, each assignment's total, per-question points and per-test result
    and recognised mistake; or, with --format canvas|moodle, the totals as that LMS's grade import
    (students mapped by --roster FILE, see README 'Grading a class')."""
    from cnncourse.grader import lms
    from cnncourse.grader.export import export_rows, render

    root = _root(args)
    columns, rows = export_rows(root, args.db, args.assignment or None)
    if args.format in lms.FORMATS:
        roster = lms.read_roster(Path(args.roster)) if args.roster else None
        columns, rows = lms.lms_table(args.format, rows, [c for c in columns[3:] if ":" not in c], roster)
        text = lms.render_csv(columns, rows)
    else:
        text = render(columns, rows, args.format)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    suffix = args.format if args.format == "json" else "csv"
    out = Path(args.output) if args.output else root / "reports" / (
        f"grades.{suffix}" if args.format in ("csv", "json") else f"grades-{args.format}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{len(rows)} student(s) -> {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Class report of ASSIGNMENT from the gradebook and the grading journal (no student code is run): score
    distribution, item analysis, pass rate and recognised mistakes per test, statuses, similar submissions.
    Writes report.html (self-contained) and CSV files; prints a short summary."""
    from cnncourse.grader import report

    root = _root(args)
    try:
        settings = report.Settings(threshold=args.similarity)
    except ValueError as exc:
        raise course.CourseError(f"--similarity: {exc}") from None
    r = report.build(root, args.assignment, args.db, settings)
    out = Path(args.output) if args.output else root / "reports" / args.assignment
    files = report.write(r, out)
    print(report.summary_text(r))
    print(f"report: {files[0]} (+ {len(files) - 1} CSV files in {out})")
    return 0


def _add_grading_commands(sub: argparse._SubParsersAction) -> None:
    from cnncourse.grader.limits import Limits

    d = Limits()
    p = sub.add_parser("grade", help="autograde submissions in parallel, sandboxed", description=cmd_grade.__doc__)
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: number of cores)")
    p.add_argument("--timeout-cell", type=int, default=d.timeout_cell, help=f"seconds per cell ({d.timeout_cell})")
    p.add_argument("--timeout-notebook", type=int, default=d.timeout_notebook,
                   help=f"seconds per notebook ({d.timeout_notebook})")
    p.add_argument("--memory", type=int, default=d.memory_mb, help=f"MB of address space per kernel ({d.memory_mb})")
    p.add_argument("--max-procs", type=int, default=d.max_procs,
                   help=f"processes a submission may run at once ({d.max_procs})")
    p.add_argument("--max-file", type=int, default=d.file_mb, help=f"MB: largest file a kernel may write ({d.file_mb})")
    p.add_argument("--disk", type=int, default=d.disk_mb, help=f"MB a kernel may write in all ({d.disk_mb})")
    p.add_argument("--max-submission", type=int, default=d.submission_mb,
                   help=f"MB of submitted files read per submission, notebooks first ({d.submission_mb})")
    p.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads per kernel (default cores/jobs)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL (default: the course config's)")
    p.add_argument("--force", action="store_true", help="regrade students already graded")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student kernels unsandboxed (where bwrap cannot run; exposes the course, see README)")
    p.add_argument("--cold-kernels", action="store_true",
                   help="start every kernel from scratch in its sandbox instead of forking it from the run's warm "
                        "zygote (slower; the isolation is the same)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on this Dask cluster (tcp://HOST:8786, tls://..., or `gateway` for a new Dask Gateway "
                        "cluster of --jobs workers): one task per submission, each in its worker's sandbox; needs "
                        "`pip install 'cnncourse[dask]'`")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("feedback", help="HTML feedback without hidden tests", description=cmd_feedback.__doc__)
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export", help="grades to CSV", description=cmd_export.__doc__)
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--format", choices=("csv", "json", "canvas", "moodle"), default="csv",
                   help="csv/json: everything; canvas/moodle: that LMS's grade import CSV")
    p.add_argument("--roster", help="CSV mapping nbgrader student ids to LMS ids (column 'student' plus name, "
                   "canvas_id, sis_user_id, sis_login_id, section, email, id_number)")
    p.add_argument("--output", "-o", help="file to write (default reports/grades.FORMAT; '-' for stdout)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="class report: item analysis, mistakes per test, similar code",
                       description=cmd_report.__doc__)
    p.add_argument("assignment")
    p.add_argument("--db", help="gradebook SQLAlchemy URL (default: the course config's)")
    p.add_argument("--output", "-o", help="folder to write into (default reports/ASSIGNMENT/)")
    p.add_argument("--similarity", type=float, default=0.8, metavar="THRESHOLD",
                   help="list pairs whose normalised code is at least this similar, 0-1 (default 0.8); a signal "
                        "to review by hand, never an accusation")
    p.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cnncourse`` command."""
    parser = argparse.ArgumentParser(prog="cnncourse", description=__doc__)
    parser.add_argument("--root", help="course folder (default: found from the current directory)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("lab", help="open the course in JupyterLab", description=cmd_lab.__doc__)
    p.add_argument("--port", type=int, default=8888, help="port to serve on (default 8888, or the next free one)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for "
                   "a container whose port is published)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="extra arguments for jupyter lab")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("doctor", help="check the installation and the course", description=cmd_doctor.__doc__)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("release", help="generate assignments/ from solutions/", description=cmd_release.__doc__)
    p.add_argument("assignment", nargs="?", help="assignment folder name in solutions/")
    p.add_argument("--all", action="store_true", help="every assignment in solutions/")
    p.add_argument("--check", action="store_true", help="only check; exit 1 and name stale notebooks")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("validate", help="run a notebook's visible tests", description=cmd_validate.__doc__)
    p.add_argument("path", help="notebook to validate")
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    p.set_defaults(func=cmd_validate)

    _add_grading_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnncourse`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except course.CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
