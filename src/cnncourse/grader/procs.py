"""Process-tree helpers for the grader: find and kill everything a worker or kernel started."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _pids_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    if not os.path.isdir("/proc"):  # macOS: ask psutil (slower, same answer)
        import psutil

        for proc in psutil.process_iter(["pid", "ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.info["pid"])
        return children
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _children(pid: int) -> list[int] | None:
    """Children of ``pid`` from ``/proc/<pid>/task/*/children`` (None where the kernel lacks that file)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    found: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (reads only their own /proc entries where the kernel allows: the
    process watchdog calls this four times a second)."""
    out, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        if children is None:
            return _descendants_by_scan(pid)
        out += children
        todo += children
    return out


def _descendants_by_scan(pid: int) -> list[int]:
    tree, out, todo = _pids_by_parent(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def reap() -> None:
    """Collect exited children (zombies) of this process without blocking."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def kill_tree(pid: int, include_self: bool = True) -> int:
    """SIGKILL ``pid``'s descendants (their process groups first, which stops fork loops) and ``pid``;
    returns how many descendants were signalled."""
    killed, own_group = 0, os.getpgid(0)
    for _ in range(20):
        found = descendants(pid)
        if not found:
            break
        for child in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                pgid = os.getpgid(child)
                if pgid != own_group and pgid != (pid if include_self else -1):
                    os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
            killed += 1
        time.sleep(0.02)
        reap()
    if include_self:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return killed


def kill_sandbox(sandbox: int | None, warm_kernel: int | None) -> None:
    """End a kernel's sandbox (its PID 1 takes every process inside along) and, for a warm kernel, which is not
    the sandbox's descendant (``zygote.py``), the kernel's own tree."""
    for pid in (sandbox, warm_kernel):
        if pid:
            kill_tree(pid)


def running(pid: int) -> bool:
    """Is ``pid`` running (not gone, not a zombie)? For a process that is nobody's child here (no waitpid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def prctl(option: int, value: int) -> None:
    """``prctl(2)`` where it exists (Linux); a no-op elsewhere."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
