"""Warm kernels: one process per grading run has imported ipykernel and what the assignment's own cells import,
and forks every submission's kernel straight into that submission's fresh sandbox.

Starting a kernel cold costs about 0.45 s of CPU (Python, ipykernel, the setup cell's imports). The sandbox stays
one per submission: the worker starts bwrap exactly as before (``sandbox.base_args``) with a placeholder
(``sleep``, bwrap ``--as-pid-1``) instead of the kernel, and asks the zygote for a kernel over a unix socket in
the run's private scratch folder. The zygote forks a *joiner*, which enters the sandbox's namespaces (``setns``:
the user namespace that owns them, then mount, IPC, UTS, network, PID and the sandbox's own user namespace) and
starts the kernel as an orphan there, so that it is a child of the sandbox's PID 1 (``getppid()`` is 1, as for a
kernel bwrap started). The kernel sees only the sandbox's processes and files, runs as its uid 1000 with no
capabilities and ``no_new_privs``, the memory and file-size limits, the kernels' clean environment and no file
descriptor of the grader's but the log it was handed. The zygote is a fresh ``python -I`` started with that clean
environment: no secret, gradebook or submission is ever in the memory a kernel inherits.

Signals from inside the namespace cannot end PID 1, so no submission can end its own sandbox; the kernel dies
with the sandbox (when PID 1 goes, every process in it goes), and the kernel manager counts the kernel dead as
soon as it exits or is a zombie (``alive``), then ends the sandbox.

``python -m cnncourse.grader.zygote SOCKET MODULES_JSON`` serves; the grader's side (starting a zygote, asking
it for a kernel) is ``warm.py``. Kernels use one BLAS/OpenMP thread (see ``warm.start``).
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import sys

from cnncourse.grader import tracebacks

CLONE = {"mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000, "pid": 0x20000000,
         "net": 0x40000000}
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
CAPABILITY_V3 = 0x20080522
PLACEHOLDER = ["sleep", "infinity"]  # what bwrap runs until the kernel joins: /usr/bin/sleep
# what every kernel imports: ipykernel, what its start-up imports (its debugger: debugpy/pydevd, 130 modules),
# and what IPython imports to format a traceback (stack_data, pygments' terminal formatter)
ALWAYS = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "IPython",
          "IPython.core.debugger", "IPython.core.completerlib", "IPython.extensions.storemagic", "sqlite3", "psutil",
          "IPython.core.ultratb", "stack_data", "pygments.formatters.terminal256", "pygments.styles")
FRAME = struct.Struct("!I")
OWN_FOLDER = "cnncourse-zygote-"  # prefix of a folder that holds only a zygote's socket and log (warm.Zygote)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def join_sandbox(target: int) -> None:
    """Enter every namespace of the host process ``target`` (a sandbox's placeholder); children forked after
    this are processes of its PID namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fds = {name: os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY) for name in CLONE}
    try:
        owner = fcntl.ioctl(fds["mnt"], NS_GET_USERNS)  # bwrap nests its user namespace: join its parent first
        try:
            same = os.fstat(owner).st_ino == os.fstat(fds["user"]).st_ino
            _check(libc.setns(owner, CLONE["user"]), "setns(user namespace owning the sandbox)")
        finally:
            os.close(owner)
        for name in ("mnt", "ipc", "uts", "net", "pid"):
            _check(libc.setns(fds[name], CLONE[name]), f"setns({name})")
        if not same:
            _check(libc.setns(fds["user"], CLONE["user"]), "setns(sandbox user namespace)")
    finally:
        for fd in fds.values():
            os.close(fd)
    os.chdir("/")


def drop_privileges() -> None:
    """No capabilities (joining a user namespace grants them all inside it), none to be gained by exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails past the last capability: fine
    header = (ctypes.c_uint32 * 2)(CAPABILITY_V3, 0)
    _check(libc.capset(header, (ctypes.c_uint32 * 6)()), "capset(none)")


def _become_kernel(request: dict, log_fd: int) -> None:
    """In the sandbox, as the kernel: limits, clean process state, the inbox copied in, then ipykernel."""
    import resource

    drop_privileges()
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, 1 << 16)  # the zygote's socket, the request's connection, the log's original fd
    for limit, value in ((resource.RLIMIT_AS, request["memory"]), (resource.RLIMIT_FSIZE, request["fsize"])):
        if value > 0:
            resource.setrlimit(limit, (value, value))
    os.environ.clear()
    os.environ.update(request["env"])
    inbox, workdir = request["inbox"], request["workdir"]
    os.makedirs(workdir, exist_ok=True)
    if os.path.isdir(inbox):
        shutil.copytree(inbox, workdir, dirs_exist_ok=True, symlinks=True)
    if request.get("mplcache") and os.path.isdir(request["mplcache"]):
        shutil.copytree(request["mplcache"], os.path.expanduser("~/.cache/matplotlib"), dirs_exist_ok=True)
    os.chdir(workdir)
    sys.path.insert(0, workdir)  # as `python -m ipykernel_launcher` started in the working folder would
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    threads = int(request["env"].get("OMP_NUM_THREADS", "1"))
    if "torch" in sys.modules and threads > 1:  # imported on one thread in the zygote; the kernel may use more
        sys.modules["torch"].set_num_threads(threads)
    from ipykernel.kernelapp import IPKernelApp

    sys.argv = ["ipykernel_launcher", *request["args"]]
    app = IPKernelApp.instance()
    app.initialize(request["args"])
    tracebacks.format_tracebacks_once(app.shell)
    app.start()


def _serve_one(conn: socket.socket, request: dict, log_fd: int) -> None:
    """The joiner: enter the sandbox and start the kernel there as an orphan, so that it becomes a child of the
    sandbox's PID 1 (``os.getppid()`` is 1, as for a kernel bwrap started), then answer."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        join_sandbox(int(request["target"]))
        if os.getuid() != int(request["uid"]):  # a sandbox that is not (yet) what base_args asked for
            raise RuntimeError(f"joined uid {os.getuid()}, not the sandbox's {request['uid']}")
        middle = os.fork()  # the first process in the PID namespace: it forks the kernel and exits
        if middle == 0:
            try:
                if os.fork() == 0:
                    _become_kernel(request, log_fd)
            finally:
                os._exit(0)
        os.close(log_fd)
        os.waitpid(middle, 0)
        conn.sendall(b'{"started": true}\n')
    except BaseException as exc:
        try:
            conn.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
        except OSError:
            pass
    finally:
        os._exit(0)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """One request: a length-prefixed JSON object, with the kernel's log as the one passed descriptor."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
    while len(data) < FRAME.size or len(data) < FRAME.size + FRAME.unpack(data[:FRAME.size])[0]:
        more = conn.recv(1 << 16)
        if not more:
            raise EOFError("short request")
        data += more
    return json.loads(data[FRAME.size:]), fds


def serve(path: str, modules: list[str]) -> None:
    """Import ``modules`` (plus ipykernel), listen on ``path`` and fork a kernel per request, forever."""
    for name in (*ALWAYS, *modules):
        try:
            __import__(name)
        except Exception:  # the kernel will meet the same error itself, in the student's notebook
            pass
    tracebacks.install()  # before the forks: every kernel inherits the work
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # setns(user) refuses multithreaded callers, and fork would copy a half-held lock
        raise SystemExit(f"the zygote has {threads} threads after its imports; it must have one")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # joiners are reaped by the system
    print("ready", flush=True)
    while True:
        if sys.stdin in select.select([server, sys.stdin], [], [])[0]:
            return  # stdin closed: the process that started the zygote is gone
        conn, _ = server.accept()
        try:
            request, fds = _receive(conn)
        except (OSError, EOFError, ValueError):
            conn.close()
            continue
        if len(fds) == 1 and os.fork() == 0:  # a request without exactly one descriptor is not answered
            server.close()
            _serve_one(conn, request, fds[0])
        conn.close()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
    # stdin closed: the grader is gone (killed) without ending this zygote; a folder of its own goes with it
    folder = os.path.dirname(os.path.abspath(sys.argv[1]))
    if os.path.basename(folder).startswith(OWN_FOLDER):
        shutil.rmtree(folder, ignore_errors=True)
