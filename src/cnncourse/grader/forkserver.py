"""A warm, single-threaded process that forks one grading worker per submission, for hosts where the grader
cannot fork its own workers (a Dask worker: multi-threaded and daemonic).

``python -m cnncourse.grader.forkserver`` reads requests from stdin and answers on stdout, one pickled
object per line-length-prefixed frame: a request is ``(job, hard_seconds, secret)``; the server imports the
assignment's preprocessors and oracle once (``scheduler.preload``), forks a child that runs exactly the
local worker (``worker.worker_main``: its own session, the kernel in the sandbox, ``result.json`` in the
job's scratch folder, its kernel forked by the assignment's warm-kernel zygote on this host, ``zygote.py``),
waits at most ``hard_seconds`` (then kills the child's whole tree) and answers
``{"exitcode": int | None, "killed": bool}``. The server dies with its parent (``PR_SET_PDEATHSIG``); each
child dies with the server. A child never sees the request pipe (stdin is ``/dev/null`` there) and the
course secret is set only in the child that grades, outside the kernel's clean environment.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

HEADER = struct.Struct("!Q")


def send(stream: BinaryIO, obj: Any) -> None:
    """Write one length-prefixed pickled object."""
    data = pickle.dumps(obj)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """Read one length-prefixed pickled object; ``EOFError`` at the end of the stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        raise EOFError("the other side closed the pipe")
    (size,) = HEADER.unpack(head)
    return pickle.loads(stream.read(size))


def _grade_in_child(job, secret: bytes | None) -> None:
    from cnncourse.grader import verdicts
    from cnncourse.grader.secret import ENV_VAR
    from cnncourse.grader.worker import worker_main

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    if secret is not None:
        os.environ[ENV_VAR] = secret.decode()
    # verdicts shared by every task of this bundle on this host
    os.environ[verdicts.ENV_VAR] = os.path.join(os.path.dirname(str(job.course.root)), "verdicts.sqlite")
    worker_main(job)  # never returns


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until stdin closes."""
    from cnncourse.grader import procs, scheduler, warm

    sockets: dict[tuple[str, str], str] = {}  # (course, assignment) -> its zygote's socket ("" = cold kernels)
    zygotes: list[warm.Zygote] = []  # kept for the server's life: each ends (and cleans up) when the server does
    while True:
        try:
            job, hard, secret = receive(requests)
        except EOFError:
            return
        key = (str(job.course.root), job.assignment)
        if key not in sockets:
            # the assignment's warm-kernel zygote on this host imports on another core during the preload
            zygote = warm.prestart(job.course.source(job.assignment), job.limits, jobs=None)
            scheduler.preload(job.course, job.assignment)
            gc.freeze()  # the children's collector leaves the preloaded objects alone
            zygotes += [zygote] if zygote is not None else []
            sockets[key] = zygote.socket() if zygote is not None else ""
        job.zygote = sockets[key]
        pid = os.fork()
        if pid == 0:
            try:
                _grade_in_child(job, secret)
            finally:
                os._exit(1)
        deadline, killed, status = time.monotonic() + hard, False, None
        while status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
            elif time.monotonic() > deadline and not killed:
                procs.kill_tree(pid)
                killed = True
            else:
                time.sleep(0.05)
        send(replies, {"exitcode": os.waitstatus_to_exitcode(status), "killed": killed})


class ForkServer:
    """The client side: one server subprocess per host process, one request at a time (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", "cnncourse.grader.forkserver"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        return self._proc

    def run(self, job, hard: float, secret: bytes | None) -> dict:
        """Grade ``job`` in a child of the server; ``{"exitcode", "killed"}``."""
        with self._lock:
            proc = self._start()
            try:
                send(proc.stdin, (job, hard, secret))
                return receive(proc.stdout)
            except (EOFError, BrokenPipeError) as exc:
                proc.kill()
                raise RuntimeError(f"the grading fork server died ({exc})") from exc


def main() -> None:
    """Entry point of the server process."""
    from cnncourse.grader import procs

    procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the reply pipe
    serve(requests, replies)


if __name__ == "__main__":
    main()
