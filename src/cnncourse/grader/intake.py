"""Taking a submission in: copy ``submitted/<student>/<assignment>/`` into the worker's scratch course,
reading only regular files (``lstat``: symlinks, devices, FIFOs and sockets are refused without being
opened, folders too when they are links) no larger than a cap. Returns what was refused, by name."""
from __future__ import annotations

import os
import stat
from pathlib import Path

SKIP = (".ipynb_checkpoints", "__pycache__")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def _copy_regular(src: Path, dest: Path, size: int) -> None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(src, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between lstat and open
            raise OSError(f"{src.name} changed while it was read")
        with open(dest, "wb") as out:
            left = size
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                out.write(chunk)
                left -= len(chunk)
    finally:
        os.close(fd)


def copy_submission(src: Path, dest: Path, budget: int) -> list[str]:
    """Copy the regular files of ``src`` into ``dest`` (created), notebooks first, while they fit in ``budget``
    bytes. Returns one line per refused entry, naming the file and why (never its content)."""
    refused: list[str] = []
    total = 0

    def walk(folder: Path, out: Path, rel: str) -> None:
        nonlocal total
        out.mkdir(parents=True, exist_ok=True)
        for entry in sorted(os.scandir(folder), key=lambda e: (not e.name.endswith(".ipynb"), e.name)):
            name = f"{rel}{entry.name}"
            if entry.name in SKIP:
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                walk(Path(entry.path), out / entry.name, name + "/")
            elif not stat.S_ISREG(info.st_mode):
                refused.append(f"{name}: {_kind(info.st_mode)}, not graded")
            elif total + info.st_size > budget:
                refused.append(f"{name}: the submission is over {budget / 2**20:g} MB in all, not graded")
            else:
                try:
                    _copy_regular(Path(entry.path), out / entry.name, info.st_size)
                    total += info.st_size
                except OSError as exc:
                    refused.append(f"{name}: could not be read ({type(exc).__name__}), not graded")

    info = os.lstat(src)
    if not stat.S_ISDIR(info.st_mode):
        dest.mkdir(parents=True, exist_ok=True)
        return [f"{src.name}/: {_kind(info.st_mode)}, not graded"]
    walk(src, dest, "")
    return refused
