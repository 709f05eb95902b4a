"""Grading a class on top of nbgrader: ``cnncourse grade``, ``cnncourse feedback`` and ``cnncourse export``.

``grade`` autogrades every ``submitted/<student>/<assignment>/`` with nbgrader's own ``Autograde`` converter
and preprocessors, one submission per worker process, N at a time:

* each worker grades in a scratch copy of the course with its *own* SQLite gradebook (a copy of a template
  made once by ``nbgrader generate_assignment``), so workers never write the class gradebook at the same time;
  the parent merges each finished submission into the class gradebook (SQLite by default, any SQLAlchemy URL
  via ``--db``) in one transaction, then moves the autograded notebooks into ``autograded/`` and writes a
  journal entry. A run that is interrupted (Ctrl-C, killed) keeps everything merged so far; the next run skips
  students with a journal entry (``--force`` regrades them);
* the kernel runs under limits: a per-cell timeout (nbgrader's), a whole-notebook timeout (cells after it are
  not run and score 0), an address-space cap (``RLIMIT_AS``), a file-size cap (``RLIMIT_FSIZE``), a process
  cap (a watchdog kills the kernel's process groups when the submission holds more processes than allowed;
  ``RLIMIT_NPROC`` does not bind root) and a cap on the output a cell may produce. Cells that passed before
  a limit was hit keep their points. When a submission ends, every process it started is killed (the worker
  is a child subreaper, so even processes that daemonised are found);
* before nbgrader runs, the worker repairs what nbgrader would choke on: unreadable notebooks are set aside
  (status ``invalid notebook``, 0 points), a renamed notebook is graded under its expected name (matched by
  its nbgrader cell ids), and deleted locked/test cells are put back from the source so their tests still run.
  nbgrader itself restores edited test cells;
* the names a locked setup cell binds for the hidden tests (``_check``, oracle lists: one leading underscore)
  are snapshotted right after it runs and put back before every test cell, so rebinding ``_check`` or emptying
  an oracle list in a solution cell does not pass hidden tests (module monkeypatches are the sealed checker's
  business: it only uses references captured before student code runs).

``feedback`` renders nbgrader's HTML feedback with hidden-test regions removed from the test cells and the
tracebacks of those cells cut to their last line, so hidden tests are never revealed. ``export`` writes one
CSV row per student with each assignment's total and per-question points, read from the gradebook.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import datetime
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from cnncourse import course

STATUSES = ("graded", "timed out", "crashed", "invalid notebook", "missing notebook")
JOURNAL_DIR = ".cnncourse-grade"  # under autograded/: one JSON per (assignment, student); glob("*") skips it
HIDDEN_NOTE = "# (hidden tests: not shown in feedback)"


# ============================================================================================ configuration
@dataclass
class Limits:
    """Per-submission limits (``--timeout-cell``, ``--timeout-notebook``, ``--memory``, ``--max-procs``)."""

    timeout_cell: int = 60
    timeout_notebook: int = 600
    memory_mb: int = 4096
    max_procs: int = 64
    file_mb: int = 1024  # largest file the kernel may write (RLIMIT_FSIZE; Python then gets OSError EFBIG)
    output_bytes: int = 1_000_000
    threads: int = 1  # OMP/MKL threads per kernel (jobs x threads <= cores)


def course_config(root: Path):
    """The course's ``nbgrader_config.py`` as a traitlets ``Config``."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(course.CONFIG_FILE, path=str(root)).load_config()


def default_db_url(root: Path) -> str:
    """The gradebook URL of the course config (``CNNCOURSE_DB`` or ``<root>/gradebook.db``)."""
    cfg = course_config(root)
    url = cfg.CourseDirectory.get("db_url") if "CourseDirectory" in cfg else None
    return str(url) if url else f"sqlite:///{root / 'gradebook.db'}"


def course_id(root: Path) -> str:
    cfg = course_config(root)
    return str(cfg.CourseDirectory.get("course_id", "default_course")) if "CourseDirectory" in cfg \
        else "default_course"


def _sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


# ============================================================================================ processes
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


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (read from /proc)."""
    tree, out, todo = _pids_by_parent(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def kill_tree(pid: int, include_self: bool = True) -> int:
    """SIGKILL ``pid``'s descendants (their process groups first, which stops fork loops) and ``pid``."""
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
            _kill(child)
            killed += 1
        time.sleep(0.02)
        _reap()
    if include_self:
        _kill(pid)
    return killed


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36

# Runs before the kernel: address-space cap, die with the grader, then exec the real kernel command.
_KERNEL_LIMITS = (
    "import os,sys,resource as r\n"
    "m,f=int(sys.argv[1]),int(sys.argv[2])\n"
    "if m>0:r.setrlimit(r.RLIMIT_AS,(m,m))\n"
    "if f>0:r.setrlimit(r.RLIMIT_FSIZE,(f,f))\n"
    "try:\n import ctypes;ctypes.CDLL(None).prctl(1,9,0,0,0)\nexcept Exception:pass\n"
    "os.execvp(sys.argv[3],sys.argv[3:])\n")


# ============================================================================================ worker side
class _State:
    """What the worker's execute preprocessor observed (one worker process grades one submission)."""

    limits = Limits()
    timed_out: list[str] = []
    crashed: list[str] = []
    kill_reason: str | None = None


def _error_output(ename: str, evalue: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _execute_classes():
    """nbgrader's ``Execute`` with limits (built lazily: importing nbgrader is slow)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import Execute

    class LimitedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            mem = _State.limits.memory_mb * 1024 * 1024 if _State.limits.memory_mb > 0 else 0
            size = _State.limits.file_mb * 1024 * 1024 if _State.limits.file_mb > 0 else 0
            return [sys.executable, "-I", "-S", "-c", _KERNEL_LIMITS, str(mem), str(size), *cmd]

    class LimitedExecute(Execute):
        """``Execute`` plus a notebook deadline, kernel-death handling and an output cap."""

        def __init__(self, *args, **kwargs):
            kwargs["kernel_manager_class"] = LimitedKernelManager
            super().__init__(*args, **kwargs)

        def preprocess(self, nb, resources=None, km=None):
            self._cell_timeout = self.timeout or _State.limits.timeout_cell
            self._deadline: float | None = None  # starts at the first cell: kernel start-up is not counted
            self._stop: str | None = None
            self._out_bytes: dict[int, int] = {}
            self._notebook = (resources or {}).get("unique_key", "notebook")
            self._protected: set[str] = set()
            self._vault = f"_cnncourse_vault_{os.urandom(8).hex()}"
            return super().preprocess(nb, resources, km)

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}).get("data") or msg.get("content", {}).get("text", "")))
            used = self._out_bytes.get(cell_index, 0)
            self._out_bytes[cell_index] = used + size
            cap = _State.limits.output_bytes
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data") \
                    and used + size > cap:
                if used <= cap:
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text=f"\n[output truncated by the grader: more than {cap} bytes]\n"))
                return None
            return super().output(outs, msg, display_id, cell_index)

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" or not cell.source.strip():
                return cell, self.resources
            if self._stop:
                cell.outputs = [_error_output("NotRun", self._stop)]
                return cell, self.resources
            if self._deadline is None:
                self._deadline = time.monotonic() + _State.limits.timeout_notebook
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._stop = (f"the notebook time limit ({_State.limits.timeout_notebook} s) was reached: this cell "
                              "and the ones after it were not run")
                _State.timed_out.append(f"{self._notebook}: notebook time limit "
                                        f"({_State.limits.timeout_notebook} s) at cell {index}")
                cell.outputs = [_error_output("NotebookTimeout", self._stop)]
                return cell, self.resources
            self.timeout = max(1, int(math.ceil(min(self._cell_timeout, remaining))))
            meta = cell.metadata.get("nbgrader", {})
            is_setup = meta.get("locked") and not meta.get("grade") and not meta.get("solution")
            is_test = meta.get("grade") and not meta.get("solution")
            try:
                if is_test and self._protected:
                    run_sync(self._quiet)(_RESTORE.format(vault=self._vault))
                cell, resources = super().preprocess_cell(cell, resources, index)
                if is_setup and not any(o.get("output_type") == "error" for o in cell.outputs):
                    names = protected_names(cell.source)
                    if names:
                        self._protected |= names
                        run_sync(self._quiet)(_SNAPSHOT.format(vault=self._vault, names=sorted(names)))
            except DeadKernelError:
                reason = _State.kill_reason or "the kernel died (os._exit, a crash or the memory limit)"
                self._stop = f"{reason} while running this cell; later cells were not run"
                _State.crashed.append(f"{self._notebook}: {reason} in cell {index}")
                cell.outputs.append(_error_output("KernelDied", self._stop))
                return cell, self.resources
            if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                limit = "notebook" if self.timeout < self._cell_timeout else "cell"
                _State.timed_out.append(f"{self._notebook}: {limit} time limit ({self.timeout} s) at cell {index}")
                if not run_sync(self._responsive)():
                    self._stop = ("the kernel did not stop after the time limit and was killed; later cells "
                                  "were not run")
                    with contextlib.suppress(Exception):
                        kill_tree(self.km.provisioner.process.pid)
            return cell, self.resources

        async def _reply(self, msg_id: str, wait: float) -> dict | None:
            """The kernel's shell reply to ``msg_id``, or None when it does not come within ``wait`` seconds."""
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=left)
                except queue.Empty:
                    return None
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg

        async def _quiet(self, code: str, wait: float = 30.0) -> bool:
            """Run grader code in the kernel without touching the notebook (no outputs, no history)."""
            msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
            reply = await self._reply(msg_id, wait)
            return reply is not None and reply["content"].get("status") == "ok"

        async def _responsive(self, wait: float = 5.0) -> bool:
            """After a timeout (and nbclient's interrupt): does the kernel answer again?"""
            return await self._reply(self.kc.kernel_info(), wait) is not None

    return LimitedExecute


# Names a locked setup cell defines for the hidden tests (``_check``, oracles such as ``_CASES``) are
# snapshotted right after it runs, before any student code, and put back before every test cell: a student
# who rebinds ``_check`` or empties ``_CASES`` gets the real checker and oracles back in the hidden tests.
_SNAPSHOT = """\
def _cnncourse_snapshot(g, names):
    import copy
    vault = g.setdefault({vault!r}, {{}})
    vault["\\0deepcopy"] = copy.deepcopy
    for name in names:
        if name in g:
            try:
                vault[name] = copy.deepcopy(g[name])
            except Exception:
                vault[name] = g[name]
_cnncourse_snapshot(globals(), {names!r})
del _cnncourse_snapshot
"""
_RESTORE = """\
def _cnncourse_restore(g):
    vault = g[{vault!r}]
    deep = vault["\\0deepcopy"]
    for name, value in vault.items():
        if name != "\\0deepcopy":
            try:
                g[name] = deep(value)
            except Exception:
                g[name] = value
_cnncourse_restore(globals())
del _cnncourse_restore
"""


def protected_names(source: str) -> set[str]:
    """Top-level names with one leading underscore that a setup cell binds (not IPython's ``_i1``, ``_3``)."""
    import ast
    import re

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        targets = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            targets = [(a.asname or a.name).split(".")[0] for a in node.names]
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    targets.append(sub.id)
        names |= {t for t in targets if t.startswith("_") and not t.startswith("__")
                  and not re.fullmatch(r"_(i+|\d+|i\d+|ii+|oh|dh|ih)?", t)}
    return names


class _Watchdog(threading.Thread):
    """Kills the kernel's processes when they exceed the process cap."""

    def __init__(self, pid: int, max_procs: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.max_procs, self.interval = pid, max_procs, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            found = descendants(self.pid)
            if len(found) > self.max_procs:
                _State.kill_reason = (f"the process limit ({self.max_procs}) was exceeded (a fork bomb?) and the "
                                      "kernel was killed")
                kill_tree(self.pid, include_self=False)


def _grade_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if "nbgrader" in c.metadata and "grade_id" in c.metadata["nbgrader"]]


def _is_protected(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return "grade_id" in meta and (meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def repair_submission(source_dir: Path, submitted_dir: Path) -> dict[str, Any]:
    """Prepare a submitted folder for nbgrader: set unreadable notebooks aside, give a renamed notebook back
    its expected name, and put back locked/test cells the student deleted (from the source notebook, outputs
    cleared; nbgrader then overwrites them with the gradebook's copy anyway). Returns what was done."""
    notes: dict[str, Any] = {"invalid": [], "missing": [], "renamed": {}, "restored": {}}
    expected = {p.name: nbformat.read(p, as_version=4) for p in sorted(source_dir.glob("*.ipynb"))}
    readable: dict[str, Any] = {}
    for path in sorted(submitted_dir.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
            if not isinstance(nb.get("cells"), list):
                raise ValueError("no cells")
            readable[path.name] = nb
        except Exception as exc:  # corrupted JSON, not a notebook
            notes["invalid"].append(f"{path.name} ({type(exc).__name__}: {str(exc)[:120]})")
            path.rename(path.with_name(path.name + ".invalid"))
    for name, src in expected.items():
        if name in readable:
            continue
        ids = set(_grade_ids(src))
        candidates = [(len(ids & set(_grade_ids(nb))), other) for other, nb in readable.items()
                      if other not in expected]
        candidates = [c for c in candidates if c[0] > 0]
        if candidates and not any(n.startswith(name) for n in notes["invalid"]):
            _, other = max(candidates)
            (submitted_dir / other).rename(submitted_dir / name)
            readable[name] = readable.pop(other)
            notes["renamed"][other] = name
        elif not any(n.startswith(name) for n in notes["invalid"]):
            notes["missing"].append(name)
    for name, src in expected.items():
        nb = readable.get(name)
        if nb is None:
            continue
        have = set(_grade_ids(nb))
        restored = []
        for i, cell in enumerate(src.cells):
            if not _is_protected(cell) or cell.metadata["nbgrader"]["grade_id"] in have:
                continue
            # insert after the nearest earlier source cell that the submission still has
            pos = 0
            for prev in reversed(src.cells[:i]):
                gid = prev.metadata.get("nbgrader", {}).get("grade_id")
                if gid in have:
                    pos = 1 + next(j for j, c in enumerate(nb.cells)
                                   if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
                    break
            new = nbformat.from_dict(json.loads(json.dumps(cell)))
            if new.cell_type == "code":
                new.outputs, new.execution_count = [], None
            nb.cells.insert(pos, new)
            have.add(cell.metadata["nbgrader"]["grade_id"])
            restored.append(cell.metadata["nbgrader"]["grade_id"])
        if restored:
            notes["restored"][name] = restored
            nbformat.write(nb, submitted_dir / name)
    return notes


@dataclass
class Job:
    """One submission to grade."""

    root: str
    assignment: str
    student: str
    scratch: str
    template_db: str
    course_id: str
    limits: Limits
    extension_s: float | None = None  # the student's extension in the class gradebook (late penalties)

    @property
    def result_file(self) -> Path:
        return Path(self.scratch) / "result.json"

    @property
    def log_file(self) -> Path:
        return Path(self.scratch) / "grade.log"


@dataclass
class Result:
    """The outcome of grading one submission (what the summary table shows and what gets merged)."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    message: str = ""
    timestamp: str | None = None
    notebooks: dict[str, Any] = field(default_factory=dict)
    merged: bool = False


def _collect(db_url: str, cid: str, assignment: str, student: str) -> tuple[dict, float, float, str | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, cid) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return {}, 0.0, 0.0, None
        notebooks = {}
        for nb in sub.notebooks:
            notebooks[nb.name] = {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: {"auto_score": g.auto_score, "manual_score": g.manual_score,
                                    "extra_credit": g.extra_credit, "needs_manual_grade": g.needs_manual_grade,
                                    "max_score": g.max_score} for g in nb.grades},
                "comments": {c.name: {"auto_comment": c.auto_comment, "manual_comment": c.manual_comment}
                             for c in nb.comments},
            }
        stamp = sub.timestamp.isoformat() if sub.timestamp else None
        return notebooks, float(sub.score), float(sub.max_score), stamp


def _max_score(db_url: str, cid: str, assignment: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, cid) as gb:
        return float(gb.find_assignment(assignment).max_score)


def _grade_in_scratch(job: Job) -> Result:
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    root, scratch = Path(job.root), Path(job.scratch)
    source = scratch / course.SOURCE_DIR / job.assignment
    submitted = scratch / "submitted" / job.student / job.assignment
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.invalid")
    shutil.copytree(root / course.SOURCE_DIR / job.assignment, source, ignore=ignore)
    shutil.copytree(root / "submitted" / job.student / job.assignment, submitted, ignore=ignore, symlinks=True)
    db = scratch / "gradebook.db"
    shutil.copyfile(job.template_db, db)
    if job.extension_s:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{db}", job.course_id) as gb:
            gb.update_or_create_student(job.student)
            gb.update_or_create_submission(job.assignment, job.student,
                                           extension=datetime.timedelta(seconds=job.extension_s))
    notes = repair_submission(source, submitted)

    cfg = course_config(root)
    over = Config()
    over.CourseDirectory.root = str(scratch)
    over.CourseDirectory.db_url = f"sqlite:///{db}"
    over.CourseDirectory.assignment_id = job.assignment
    over.CourseDirectory.student_id = job.student
    over.CourseDirectory.course_id = job.course_id
    over.Execute.timeout = job.limits.timeout_cell
    execute = _LIMITED_EXECUTE or _execute_classes()
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    over.Autograde.autograde_preprocessors = [execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                              SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    over.Autograde.create_student = True
    over.Autograde.force = True
    cfg.merge(over)
    _State.limits = job.limits
    coursedir = CourseDirectory(config=cfg)
    failure = ""
    if any(submitted.glob("*.ipynb")):
        try:
            converter = Autograde(coursedir=coursedir, config=cfg)
            converter.start()
        except BaseException as exc:  # NbGraderException after nbgrader logged the cause; keep going
            failure = f"nbgrader failed: {type(exc).__name__}: {exc}"
    notebooks, score, max_score, stamp = _collect(f"sqlite:///{db}", job.course_id, job.assignment, job.student)
    if not max_score:
        max_score = _max_score(f"sqlite:///{db}", job.course_id, job.assignment)

    messages = []
    if notes["renamed"]:
        messages.append("graded renamed notebook " + ", ".join(f"{a} as {b}" for a, b in notes["renamed"].items()))
    if notes["restored"]:
        messages.append("restored deleted cells " + ", ".join(
            f"{nb}: {', '.join(ids)}" for nb, ids in notes["restored"].items()))
    if failure:
        status = "crashed"
        messages.insert(0, failure)
    elif _State.crashed:
        status = "crashed"
        messages.insert(0, "; ".join(_State.crashed))
    elif _State.timed_out:
        status = "timed out"
        messages.insert(0, "; ".join(_State.timed_out))
    elif notes["invalid"]:
        status = "invalid notebook"
        messages.insert(0, "not a readable notebook: " + ", ".join(notes["invalid"]))
    elif notes["missing"]:
        status = "missing notebook"
        messages.insert(0, "not submitted: " + ", ".join(notes["missing"]))
    else:
        status = "graded"
    if status in ("crashed", "timed out") and (notes["invalid"] or notes["missing"]):
        messages.append("invalid/missing: " + ", ".join(notes["invalid"] + notes["missing"]))
    return Result(job.student, status, score, max_score, message="; ".join(messages), timestamp=stamp,
                  notebooks=notebooks)


def _worker_main(job: Job) -> None:
    """Entry point of a forked worker: grade one submission, write ``result.json``, exit."""
    code = 0
    start = time.monotonic()
    try:
        os.setsid()  # Ctrl-C reaches only the parent, which stops the workers itself
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(job.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        scratch = Path(job.scratch)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
        os.environ["PYTHONWARNINGS"] = "ignore"
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(job.limits.threads)
        os.environ.pop("CNNCOURSE_DB", None)
        watchdog = _Watchdog(os.getpid(), job.limits.max_procs)
        watchdog.start()
        try:
            result = _grade_in_scratch(job)
        finally:
            watchdog.stopped.set()
            kill_tree(os.getpid(), include_self=False)
    except BaseException as exc:
        result = Result(job.student, "crashed", message=f"grader error: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 1
    result.seconds = time.monotonic() - start
    tmp = job.result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    tmp.rename(job.result_file)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ============================================================================================ parent side
def _quiet_log():
    import logging

    log = logging.getLogger("cnncourse.autograde.nbgrader")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[nbgrader] %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.ERROR)
        log.propagate = False
    return log


def _run_nbgrader_generate(root: Path, assignment: str, workdir: Path, db_url: str) -> None:
    """nbgrader's ``GenerateAssignment`` (in this process) on a scratch copy of the assignment, recording
    its cells into ``db_url``; the course's own assignments/ folder is not touched."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    scratch = workdir / "course"
    shutil.copytree(root / course.SOURCE_DIR / assignment, scratch / course.SOURCE_DIR / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cfg = course_config(root)
    over = Config()
    over.CourseDirectory.root = str(scratch)
    over.CourseDirectory.db_url = db_url
    over.CourseDirectory.assignment_id = assignment
    over.GenerateAssignment.force = True
    over.GenerateAssignment.create_assignment = True
    cfg.merge(over)
    try:
        GenerateAssignment(coursedir=CourseDirectory(config=cfg), config=cfg, log=_quiet_log()).start()
    except Exception as exc:
        raise course.CourseError(f"nbgrader generate_assignment {assignment} failed: {exc} "
                                 f"(check solutions/{assignment}/ with `cnncourse release {assignment}`)") from exc


def _fast_alembic_version() -> None:
    """nbgrader stamps a new gradebook with ``alembic heads`` run as a subprocess (10 s on a loaded 2-core
    machine); read the same head revision in-process instead, once."""
    import nbgrader
    import nbgrader.api

    if getattr(nbgrader.api.get_alembic_version, "_cnncourse", False):
        return
    try:
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        head = ScriptDirectory.from_config(cfg).get_current_head()
    except Exception:  # keep nbgrader's own way
        return
    if head:
        def get_alembic_version() -> str:
            return head

        get_alembic_version._cnncourse = True
        nbgrader.api.get_alembic_version = get_alembic_version


def _preload() -> None:
    """Import what the workers need before forking them, so each worker starts warm."""
    _fast_alembic_version()
    import nbconvert.preprocessors  # noqa: F401
    import nbgrader.converters  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    from jupyter_client.manager import AsyncKernelManager  # noqa: F401
    from nbclient import NotebookClient  # noqa: F401

    global _LIMITED_EXECUTE
    if _LIMITED_EXECUTE is None:
        _LIMITED_EXECUTE = _execute_classes()


_LIMITED_EXECUTE = None


def _structure(db_url: str, cid: str, assignment: str):
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, cid) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            return None
        return sorted((nb.name, sorted((c.name, c.max_score) for c in nb.grade_cells),
                       sorted(c.name for c in nb.solution_cells),
                       sorted((c.name, c.checksum or "", c.locked) for c in nb.source_cells))
                      for nb in a.notebooks)


def prepare(root: Path, assignment: str, db_url: str, workdir: Path, cid: str) -> Path:
    """Make the template gradebook for the workers (``workdir/template/gradebook.db``) and make sure the
    class gradebook knows the assignment with the same cells (runs generate_assignment on it only if not).
    The template gets the class gradebook's due date, so workers compute lateness as nbgrader would."""
    from nbgrader.api import Gradebook

    template = workdir / "template"
    template.mkdir()
    template_url = f"sqlite:///{template / 'gradebook.db'}"
    _run_nbgrader_generate(root, assignment, template / "gen", template_url)
    if _structure(db_url, cid, assignment) != _structure(template_url, cid, assignment):
        _run_nbgrader_generate(root, assignment, workdir / "class-gen", db_url)
    with Gradebook(db_url, cid) as gb:
        duedate = gb.find_assignment(assignment).duedate
    if duedate is not None:
        with Gradebook(template_url, cid) as gb:
            gb.update_or_create_assignment(assignment, duedate=duedate)
    return template / "gradebook.db"


def extensions(db_url: str, cid: str, assignment: str) -> dict[str, float]:
    """Seconds of extension per student for ``assignment`` in the class gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, cid) as gb:
        return {s.student.id: s.extension.total_seconds() for s in gb.assignment_submissions(assignment)
                if s.extension}


def merge(db_url: str, cid: str, assignment: str, result: Result) -> None:
    """Write one student's autograde result into the class gradebook in a single transaction, replacing an
    earlier submission of the same assignment but keeping its manual scores and comments."""
    from nbgrader.api import Comment, Grade, Gradebook, Student, SubmittedAssignment, SubmittedNotebook
    from nbgrader import utils

    gb = Gradebook(db_url, cid)
    s = gb.db
    try:
        a = gb.find_assignment(assignment)
        student = s.get(Student, result.student)
        if student is None:
            student = Student(id=result.student)
            s.add(student)
        old = s.query(SubmittedAssignment).filter_by(assignment_id=a.id, student_id=result.student).one_or_none()
        keep: dict[tuple[str, str], dict] = {}
        extension = None
        if old is not None:
            extension = old.extension
            for nb in old.notebooks:
                for g in nb.grades:
                    keep[(nb.name, "g", g.name)] = {"manual_score": g.manual_score, "extra_credit": g.extra_credit}
                    s.delete(g)
                for c in nb.comments:
                    keep[(nb.name, "c", c.name)] = {"manual_comment": c.manual_comment}
                    s.delete(c)
                s.delete(nb)
            s.delete(old)
            s.flush()
        stamp = utils.parse_utc(result.timestamp) if result.timestamp else None
        with s.no_autoflush:  # build the whole submission, then write it at once
            sub = SubmittedAssignment(assignment=a, student=student, timestamp=stamp, extension=extension)
            s.add(sub)
            for notebook in a.notebooks:
                data = result.notebooks.get(notebook.name, {})
                snb = SubmittedNotebook(notebook=notebook, assignment=sub,
                                        late_submission_penalty=data.get("late_submission_penalty"))
                s.add(snb)
                grades = data.get("grades", {})
                for cell in list(notebook.grade_cells) + list(notebook.task_cells):
                    values = dict(grades.get(cell.name) or {"auto_score": 0.0, "needs_manual_grade": False})
                    values.pop("max_score", None)
                    values.update({k: v for k, v in keep.get((notebook.name, "g", cell.name), {}).items()
                                   if v is not None})
                    s.add(Grade(cell=cell, notebook=snb, **values))
                comments = data.get("comments", {})
                for cell in list(notebook.solution_cells) + list(notebook.task_cells):
                    values = dict(comments.get(cell.name) or {})
                    values.update({k: v for k, v in keep.get((notebook.name, "c", cell.name), {}).items()
                                   if v is not None})
                    s.add(Comment(cell=cell, notebook=snb, **values))
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        gb.close()


def journal_path(root: Path, assignment: str, student: str) -> Path:
    return root / "autograded" / JOURNAL_DIR / assignment / f"{student}.json"


def graded_students(root: Path, assignment: str, db_url: str, cid: str) -> set[str]:
    """Students whose submission of ``assignment`` a previous run finished (journal + gradebook entry)."""
    from nbgrader.api import Gradebook

    folder = root / "autograded" / JOURNAL_DIR / assignment
    journaled = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    if not journaled:
        return set()
    with Gradebook(db_url, cid) as gb:
        try:
            in_db = {s.student.id for s in gb.assignment_submissions(assignment)}
        except Exception:
            in_db = set()
    return journaled & in_db


def _finish(root: Path, db_url: str, cid: str, job: Job, result: Result) -> None:
    """Merge, move the autograded files into the course, write the journal (in that order)."""
    merge(db_url, cid, job.assignment, result)
    result.merged = True
    src = Path(job.scratch) / "autograded" / job.student / job.assignment
    dest = root / "autograded" / job.student / job.assignment
    if dest.exists():
        shutil.rmtree(dest)
    if src.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), dest)
    jpath = journal_path(root, job.assignment, job.student)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    entry = {k: v for k, v in asdict(result).items() if k != "notebooks"}
    entry["graded_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    tmp = jpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, indent=1))
    tmp.rename(jpath)


def list_submissions(root: Path, assignment: str) -> list[str]:
    sub = root / "submitted"
    if not sub.is_dir():
        return []
    return sorted(p.name for p in sub.iterdir() if (p / assignment).is_dir() and not p.name.startswith("."))


def grade(root: Path, assignment: str, students: list[str] | None = None, jobs: int | None = None,
          limits: Limits | None = None, db_url: str | None = None, force: bool = False, progress: bool = True,
          hard_timeout: float | None = None) -> dict[str, Result]:
    """Autograde the submissions of ``assignment`` in parallel (see the module docstring); returns
    ``{student: Result}`` for every student considered, already-graded ones with status ``skipped``.
    Raises KeyboardInterrupt after stopping the workers when interrupted."""
    from tqdm.auto import tqdm

    root = Path(root).resolve()
    course._check_assignment(root, assignment)
    db_url = db_url or default_db_url(root)
    cid = course_id(root)
    jobs = max(1, jobs or os.cpu_count() or 1)
    limits = limits or Limits()
    if limits.threads <= 0:
        limits.threads = max(1, (os.cpu_count() or 1) // jobs)
    available = list_submissions(root, assignment)
    wanted = students or available
    results: dict[str, Result] = {}
    for s in wanted:
        if s not in available:
            results[s] = Result(s, "missing notebook", message=f"no folder submitted/{s}/{assignment}/")
    todo = [s for s in wanted if s in available]
    if not force and todo:
        done = graded_students(root, assignment, db_url, cid)
        for s in [s for s in todo if s in done]:
            entry = json.loads(journal_path(root, assignment, s).read_text())
            results[s] = Result(s, "skipped", entry.get("score", 0.0), entry.get("max_score", 0.0),
                                message=f"already graded ({entry.get('status')}); --force to regrade")
        todo = [s for s in todo if s not in done]
    if not todo:
        return results
    n_notebooks = len(list((root / course.SOURCE_DIR / assignment).glob("*.ipynb")))
    hard = hard_timeout or n_notebooks * (limits.timeout_notebook + 2 * limits.timeout_cell + 30) + 60
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix=f"cnncourse-grade-{assignment}-") as tmp:
        work = Path(tmp)
        _preload()
        template = prepare(root, assignment, db_url, work, cid)
        extra = extensions(db_url, cid, assignment)
        pending = deque(Job(str(root), assignment, s, str(work / "jobs" / s), str(template), cid, limits,
                            extra.get(s)) for s in todo)
        running: dict[int, tuple[Any, Job, float]] = {}
        failures = 0
        tqdm.monitor_interval = 0  # no monitor thread in a process that forks
        bar = tqdm(total=len(todo), desc=f"grading {assignment}", unit="sub", disable=not progress,
                   dynamic_ncols=True)

        def collect(proc, job: Job, started: float, killed: str | None = None) -> None:
            nonlocal failures
            if job.result_file.is_file() and not killed:
                result = Result(**json.loads(job.result_file.read_text()))
            else:
                log = job.log_file.read_text()[-800:] if job.log_file.is_file() else ""
                result = Result(job.student, "timed out" if killed == "timeout" else "crashed",
                                seconds=time.monotonic() - started,
                                message=(f"grading was stopped after {hard:.0f} s" if killed == "timeout" else
                                         f"worker died (exit {proc.exitcode})") + (f"; log: {log}" if log else ""))
            if job.result_file.is_file() and not killed:  # else nothing to merge: retried by the next run
                _finish(root, db_url, cid, job, result)
            results[job.student] = result
            if result.status != "graded":
                failures += 1
            bar.set_postfix_str(f"not clean: {failures}", refresh=False)
            bar.update(1)

        try:
            while pending or running:
                while pending and len(running) < jobs:
                    job = pending.popleft()
                    Path(job.scratch).mkdir(parents=True)
                    proc = ctx.Process(target=_worker_main, args=(job,), daemon=False)
                    proc.start()
                    running[proc.sentinel] = (proc, job, time.monotonic())
                ready = multiprocessing.connection.wait(list(running), timeout=0.5)
                for sentinel in ready:
                    proc, job, started = running.pop(sentinel)
                    proc.join()
                    collect(proc, job, started)
                now = time.monotonic()
                for sentinel, (proc, job, started) in list(running.items()):
                    if now - started > hard:
                        kill_tree(proc.pid)
                        proc.join()
                        running.pop(sentinel)
                        collect(proc, job, started, killed="timeout")
        except BaseException:
            for proc, _, _ in running.values():
                kill_tree(proc.pid)
                proc.join()
            raise
        finally:
            bar.close()
    return results


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}min"


def summary_table(results: dict[str, Result]) -> str:
    rows = [("student", "score", "time", "status", "details")]
    for s in sorted(results):
        r = results[s]
        rows.append((s, f"{r.score:g}/{r.max_score:g}", _fmt_seconds(r.seconds) if r.seconds else "-", r.status,
                     (r.message[:100] + "…") if len(r.message) > 100 else r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * min(120, len(lines[0])))
    counts = {st: sum(r.status == st for r in results.values()) for st in (*STATUSES, "skipped")}
    lines.append(", ".join(f"{n} {st}" for st, n in counts.items() if n))
    return "\n".join(line.rstrip() for line in lines)


# ============================================================================================ feedback
def _feedback_preprocessor():
    from nbgrader import utils
    from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

    class HideHiddenTests(NbGraderPreprocessor):
        """Remove hidden-test regions from test cells and cut those cells' tracebacks to the error line."""

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" or not (utils.is_grade(cell) or utils.is_locked(cell)):
                return cell, resources
            clear = ClearHiddenTests(enforce_metadata=False)
            if clear._remove_hidden_test_region(cell):
                cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_NOTE
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
            return cell, resources

    return HideHiddenTests


def feedback(root: Path, assignment: str, students: list[str] | None = None, db_url: str | None = None,
             force: bool = True) -> list[Path]:
    """HTML feedback in ``feedback/<student>/<assignment>/`` from the autograded notebooks and the gradebook,
    without hidden tests. Returns the files written."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    root = Path(root).resolve()
    db_url = db_url or default_db_url(root)
    written: list[Path] = []
    targets = students or sorted(p.name for p in (root / "autograded").glob("*")
                                 if (p / assignment).is_dir() and not p.name.startswith("."))
    for student in targets:
        if not (root / "autograded" / student / assignment).is_dir():
            raise course.CourseError(f"{student} has no autograded {assignment}: run `cnncourse grade {assignment}`")
        cfg = course_config(root)
        over = Config()
        over.CourseDirectory.root = str(root)
        over.CourseDirectory.db_url = db_url
        over.CourseDirectory.assignment_id = assignment
        over.CourseDirectory.student_id = student
        over.GenerateFeedback.preprocessors = [GetGrades, _feedback_preprocessor(), CSSHTMLHeaderPreprocessor]
        over.GenerateFeedback.force = force
        cfg.merge(over)
        converter = GenerateFeedback(coursedir=CourseDirectory(config=cfg), config=cfg)
        converter.start()
        written += sorted((root / "feedback" / student / assignment).glob("*.html"))
    return written


# ============================================================================================ export
def export_rows(root: Path, db_url: str | None = None, assignments: list[str] | None = None
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per student: each assignment's total and every question's points
    (``assignment`` and ``assignment:question``, or ``assignment:notebook:question`` for multi-notebook
    assignments). Students without a submission get empty cells."""
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root).resolve()
    with Gradebook(db_url or default_db_url(root), course_id(root)) as gb:
        names = assignments or [a.name for a in sorted(gb.assignments, key=lambda a: (a.duedate is None,
                                                                                      a.duedate, a.name))]
        columns = ["student", "first_name", "last_name"]
        layout = {}
        for name in names:
            a = gb.find_assignment(name)
            cells = []
            for nb in sorted(a.notebooks, key=lambda n: n.name):
                for cell in sorted(nb.grade_cells, key=lambda c: c.name):
                    label = f"{name}:{cell.name}" if len(a.notebooks) == 1 else f"{name}:{nb.name}:{cell.name}"
                    cells.append((nb.name, cell.name, label))
            layout[name] = cells
            columns += [name] + [c[2] for c in cells]
        rows = []
        for student in sorted(gb.students, key=lambda s: s.id):
            row: dict[str, Any] = {"student": student.id, "first_name": student.first_name or "",
                                   "last_name": student.last_name or ""}
            for name in names:
                try:
                    sub = gb.find_submission(name, student.id)
                except MissingEntry:
                    row.update({name: ""}, **{c[2]: "" for c in layout[name]})
                    continue
                row[name] = sub.score
                scores = {(nb.name, g.name): g.score + (g.extra_credit or 0) for nb in sub.notebooks
                          for g in nb.grades}
                for nb_name, cell, label in layout[name]:
                    row[label] = scores.get((nb_name, cell), 0.0)
            rows.append(row)
    return columns, rows


# ============================================================================================ CLI
def _root(args) -> Path:
    return course.find_root(getattr(args, "root", None))


def cmd_grade(args: argparse.Namespace) -> int:
    """Autograde every submitted/<student>/<ASSIGNMENT>/ in parallel into the gradebook."""
    root = _root(args)
    limits = Limits(timeout_cell=args.timeout_cell, timeout_notebook=args.timeout_notebook, memory_mb=args.memory,
                    max_procs=args.max_procs, threads=args.threads, file_mb=args.max_file)
    try:
        results = grade(root, args.assignment, students=args.student or None, jobs=args.jobs, limits=limits,
                        db_url=args.db, force=args.force, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\nInterrupted: submissions finished so far are in the gradebook; run the same command again to "
              "continue where it stopped.", file=sys.stderr)
        return 130
    if not results:
        print(f"no submissions of {args.assignment} in {root / 'submitted'}/<student>/{args.assignment}/")
        return 1
    print(summary_table(results))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Write HTML feedback (scores, the student's code, visible-test results; never hidden tests)."""
    root = _root(args)
    files = feedback(root, args.assignment, students=args.student or None, db_url=args.db)
    for f in files:
        print(f.relative_to(root))
    print(f"{len(files)} feedback file(s) in feedback/<student>/{args.assignment}/")
    return 0 if files else 1


def cmd_export(args: argparse.Namespace) -> int:
    """Export grades: one row per student, each assignment's total and per-question points."""
    root = _root(args)
    columns, rows = export_rows(root, args.db, args.assignment or None)
    if args.format == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output) if args.output else root / "reports" / f"grades.{args.format}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"{len(rows)} student(s) -> {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``grade``, ``feedback`` and ``export`` to the ``cnncourse`` command (called by cli.py)."""
    d = Limits()
    p = subparsers.add_parser("grade", help="autograde submissions in parallel", description=cmd_grade.__doc__)
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: number of cores)")
    p.add_argument("--timeout-cell", type=int, default=d.timeout_cell, help=f"seconds per cell ({d.timeout_cell})")
    p.add_argument("--timeout-notebook", type=int, default=d.timeout_notebook,
                   help=f"seconds per notebook ({d.timeout_notebook})")
    p.add_argument("--memory", type=int, default=d.memory_mb, help=f"MB of address space per kernel ({d.memory_mb})")
    p.add_argument("--max-procs", type=int, default=d.max_procs,
                   help=f"processes a submission may run at once ({d.max_procs})")
    p.add_argument("--max-file", type=int, default=d.file_mb,
                   help=f"MB: largest file a submission may write ({d.file_mb})")
    p.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads per kernel (default cores/jobs)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL (default: the course config's)")
    p.add_argument("--force", action="store_true", help="regrade students already graded")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_grade)

    p = subparsers.add_parser("feedback", help="HTML feedback without hidden tests", description=cmd_feedback.__doc__)
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL")
    p.set_defaults(func=cmd_feedback)

    p = subparsers.add_parser("export", help="grades to CSV", description=cmd_export.__doc__)
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--output", "-o", help="file to write (default reports/grades.FORMAT; '-' for stdout)")
    p.add_argument("--db", help="gradebook SQLAlchemy URL")
    p.set_defaults(func=cmd_export)
