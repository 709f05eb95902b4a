"""The grading journal (``autograded/.cnncourse-grade/<assignment>/``): one JSON entry per graded student,
an attempt counter per student, the worker logs, and the class lock that keeps two ``cnncourse grade`` runs
from grading one class at the same time."""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from cnncourse import course
from cnncourse.grader.layout import JOURNAL_DIR, Course
from cnncourse.grader.result import Result

GIVE_UP_AFTER = 2  # attempts that ended the whole run (no result) before a submission is recorded as crashed


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.rename(path)


def entry_path(crs: Course, assignment: str, student: str) -> Path:
    return crs.journal_dir(assignment) / f"{student}.json"


def log_path(crs: Course, assignment: str, student: str) -> Path:
    """The worker's log for this student, kept next to the journal entry."""
    path = crs.journal_dir(assignment) / f"{student}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_entry(crs: Course, assignment: str, result: Result) -> None:
    """Record a finished submission (everything of the result but the raw grades; per-test results kept)."""
    entry = {k: v for k, v in asdict(result).items() if k != "notebooks"}
    entry["graded_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    _write_json(entry_path(crs, assignment, result.student), entry)
    attempts_path(crs, assignment, result.student).unlink(missing_ok=True)


def read_entry(crs: Course, assignment: str, student: str) -> dict:
    return json.loads(entry_path(crs, assignment, student).read_text())


def journaled(crs: Course, assignment: str) -> set[str]:
    folder = crs.journal_dir(assignment)
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def attempts_path(crs: Course, assignment: str, student: str) -> Path:
    return crs.journal_dir(assignment) / f"{student}.attempts"


def start_attempt(crs: Course, assignment: str, student: str) -> int:
    """Count one more attempt at grading ``student``; returns how many earlier attempts never finished."""
    path = attempts_path(crs, assignment, student)
    before = int(path.read_text() or 0) if path.is_file() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(before + 1))
    return before


class ClassLock:
    """An exclusive lock on a course's grading (``flock`` on ``autograded/.cnncourse-grade/grade.lock``,
    released by the kernel when the holder dies). The file names the holder, for the error message."""

    def __init__(self, crs: Course):
        self.path = crs.root / "autograded" / JOURNAL_DIR / "grade.lock"
        self.fd: int | None = None

    def __enter__(self) -> "ClassLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise course.CourseError(f"another `cnncourse grade` is grading this course ({holder}); wait for it to "
                                     f"finish or stop it, then run this command again (lock: {self.path})") from None
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}: "
                     f"{' '.join(sys.argv[:4])}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None
