"""The ``cnncourse`` command: ``lab``, ``doctor``, ``release``, ``validate`` (and ``grade``, ``feedback``,
``export`` from :mod:`cnncourse.autograde`). Run ``cnncourse COMMAND --help`` for each."""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
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
    results = course.validate(Path(args.path), timeout=args.timeout)
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

    if importlib.util.find_spec("cnncourse.autograde") is not None:  # grade / feedback / export
        importlib.import_module("cnncourse.autograde").register(sub)
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
