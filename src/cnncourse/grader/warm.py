"""The grader's side of warm kernels (``zygote.py``): which modules a zygote preloads, starting one (per grading
run, per Dask host, or per process for plain ``nbgrader autograde``), and asking it for a kernel in a sandbox."""
from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnncourse.grader import procs, sandbox
from cnncourse.grader.zygote import FRAME, OWN_FOLDER, PLACEHOLDER


def modules_of(notebooks: list) -> list[str]:
    """The modules that the instructor's code cells of ``notebooks`` (paths or notebook nodes) import: locked
    and test cells (never a cell a student wrote or added). Every kernel of the assignment imports them anyway,
    so a zygote that has them changes nothing a student's code can reach."""
    import ast

    import nbformat

    found: dict[str, None] = {}
    for nb in notebooks:
        nb = nbformat.read(str(nb), as_version=4) if isinstance(nb, (str, Path)) else nb
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
                continue
            lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update((alias.name, None) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found[node.module] = None  # and the names, which may be submodules (tried, not required)
                    found.update((f"{node.module}.{alias.name}", None) for alias in node.names)
    return list(found)


class Zygote:
    """A zygote in a private folder of its own (its socket and log). ``socket()`` waits until it listens,
    ``close()`` ends it and removes the folder; a zygote whose grader was killed removes the folder itself."""

    def __init__(self, modules: list[str], env: dict[str, str]):
        self.folder = Path(tempfile.mkdtemp(prefix=OWN_FOLDER))
        self.log = self.folder / "z.log"
        self.proc = start(self.folder / "z.sock", modules, env, self.log)
        self._socket: str | None = None

    def socket(self) -> str:
        """The socket to ask for kernels, or "" when the zygote did not start (every kernel then starts cold)."""
        if self._socket is None:
            self._socket = str(self.folder / "z.sock") if ready(self.proc) else ""
        return self._socket

    def close(self) -> None:
        """End the zygote (its kernels live in their own sandboxes) and remove its folder; idempotent."""
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def prestart(source: Path, limits, jobs: int | None) -> Zygote | None:
    """The zygote of a local ``cnncourse grade`` run over the notebooks in ``source`` (an assignment's source
    folder), started before the grader imports nbgrader and torch so that its own imports overlap them (on
    another core) instead of the preload's. None when kernels start cold (no sandbox, ``--cold-kernels``)."""
    notebooks = sorted(Path(source).glob("*.ipynb"))
    if not (limits.sandbox and limits.warm_kernels and notebooks):
        return None
    return Zygote(modules_of(notebooks), sandbox.clean_env(limits.kernel_threads(jobs)))


_SHARED: dict[tuple, Zygote] = {}  # (modules, threads) -> this process's zygote


def shared(modules: list[str], env: dict[str, str]) -> str:
    """The socket of this process's zygote for ``modules``, started on first use: plain ``nbgrader
    autograde`` (and ``cnncourse validate``) grade one notebook after another in one process, and every kernel
    after the first starts warm. "" when no zygote can run here (kernels then start cold)."""
    import atexit

    key = (tuple(modules), env.get("OMP_NUM_THREADS"))
    if key not in _SHARED:
        _SHARED[key] = zygote = Zygote(modules, env)
        atexit.register(zygote.close)
    return _SHARED[key].socket()


def start(path: Path, modules: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Launch the zygote of a grading run (it will listen on ``path``; ``ready()`` waits for it). ``env`` is
    the kernels' clean environment; matplotlib gets the inline backend ipykernel would give it, BLAS and OpenMP
    one thread (OpenBLAS starts threads when NumPy is imported; setns(user) needs a single-threaded caller)."""
    env = {**env, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           **{var: "1" for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    with open(log, "ab") as err:
        # it ends when its stdin closes, i.e. with the last process holding the pipe (this one, its workers)
        return subprocess.Popen([sys.executable, "-I", "-m", "cnncourse.grader.zygote", str(path),
                                 json.dumps(modules)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err)


def ready(proc: subprocess.Popen, wait: float = 120.0) -> bool:
    """Wait until the zygote listens (its imports take a second or two); False when it died or hung."""
    if select.select([proc.stdout], [], [], wait)[0] and proc.stdout.readline().strip() == b"ready":
        return True
    proc.kill()
    proc.wait()
    return False


def placeholder_pid(bwrap_pid: int, wait: float = 10.0) -> int:
    """The host pid of the sandbox's PID 1 once it runs the placeholder. Before its exec, bwrap's child is
    still building the sandbox (namespaces without their uid map, mounts before the pivot): joining then would
    not be joining the sandbox, so the command name must be the placeholder's."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for pid in procs.descendants(bwrap_pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != PLACEHOLDER[0]:
                        continue
                with open(f"/proc/{pid}/status") as f:
                    nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue
            if nspid[-1] == "1":
                return pid
        time.sleep(0.002)
    raise RuntimeError("the sandbox did not start its placeholder process")


def spawn(path: str, request: dict, log_fd: int, wait: float = 30.0) -> int:
    """Ask the zygote at ``path`` for a kernel in the sandbox whose PID 1 is ``request["target"]``; returns the
    kernel's host pid (the placeholder's only child once the kernel has started)."""
    body = json.dumps(request).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(wait)
        conn.connect(path)
        socket.send_fds(conn, [FRAME.pack(len(body)) + body], [log_fd])
        reply = b""
        while not reply.endswith(b"\n"):
            more = conn.recv(4096)
            if not more:
                break
            reply += more
    answer = json.loads(reply or b"{}")
    if not answer.get("started"):
        raise RuntimeError(f"the kernel zygote could not start a kernel: {answer.get('error', 'no answer')}")
    children = procs.descendants(int(request["target"]))
    if not children:
        raise RuntimeError("the warm kernel died at once (see the worker log)")
    return children[0]
