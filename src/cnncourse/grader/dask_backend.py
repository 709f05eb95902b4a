"""``cnncourse grade A --scheduler tcp://HOST:8786``: every submission is one task on a Dask cluster.

The client (this process) holds the class lock, makes the template gradebook once and ships what grading
needs in one :class:`CourseBundle` (``nbgrader_config.py``, ``solutions/<assignment>/`` with the oracle, the
template gradebook and the course secret), held by the cluster as the result of one task that carries it
(scattered data would be lost with the last worker holding a copy: Dask's memory manager keeps one copy of an
idle key, and every task still needing it would be cancelled; a task's result is recomputed). A task carries
one student's submitted files; the Dask worker unpacks the bundle once into its local scratch space and grades the
submission exactly as a local worker does (``worker.worker_main`` forked by a warm
:mod:`~cnncourse.grader.forkserver`, the kernel in the bubblewrap sandbox of that host, the same limits and
hard timeout), then returns the :class:`~cnncourse.grader.result.Result` and the autograded notebooks.
The client merges each returned result into the class gradebook, moves the notebooks into ``autograded/``
and writes the journal entry through the local path's own ``GradingRun.record`` (same progress bar, summary,
journal and resume semantics). A task whose worker dies is rerun by Dask on another worker; the client merges
a student only when the task's result arrives, so nobody is lost or counted twice. Ctrl-C cancels the
tasks in flight: what was merged stays, the next run grades the rest.

The cluster is trusted like the grading machine (it receives the course secret and the hidden tests): use
``tls://`` addresses (or a Dask Gateway cluster's security) off a private network.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cnncourse import course
from cnncourse.grader import gradebook, journal
from cnncourse.grader.layout import Course
from cnncourse.grader.limits import Limits
from cnncourse.grader.result import Result
from cnncourse.grader.scheduler import GradingRun, preload
from cnncourse.grader.secret import course_secret
from cnncourse.grader.worker import Job

MB = 1024 * 1024
SKIP = ("__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class CourseBundle:
    """What a Dask worker needs to grade one assignment: a tar of the course's grading files and the secret."""

    assignment: str
    archive: bytes  # nbgrader_config.py, solutions/<assignment>/, template.db
    secret: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.archive + self.secret).hexdigest()[:16]


def make_bundle(crs: Course, assignment: str, template_db: Path) -> CourseBundle:
    """Pack the course config, the assignment's source folder (notebooks, oracle) and the template gradebook."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(crs.root / course.CONFIG_FILE, arcname=course.CONFIG_FILE)
        tar.add(crs.source(assignment), arcname=f"{course.SOURCE_DIR}/{assignment}",
                filter=lambda info: None if Path(info.name).name in SKIP or info.issym() or info.islnk() else info)
        tar.add(template_db, arcname="template.db")
    return CourseBundle(assignment, buf.getvalue(), course_secret(crs.root))


def read_submission(crs: Course, student: str, assignment: str, cap_mb: int) -> dict[str, bytes]:
    """The submitted regular files (relative path -> bytes), at most ``cap_mb`` MB in all, notebooks first;
    the worker's intake applies the same rules again."""
    folder = crs.submitted(student, assignment)
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
             and not any(part in SKIP for part in p.relative_to(folder).parts)]
    files.sort(key=lambda p: (p.suffix != ".ipynb", str(p)))
    out, used = {}, 0
    for path in files:
        size = path.stat().st_size
        if used + size > cap_mb * MB:
            continue
        used += size
        out[str(path.relative_to(folder))] = path.read_bytes()
    return out


# ---- worker side -------------------------------------------------------------------------------------------
_SERVERS = threading.local()


def _course_on_worker(bundle: CourseBundle) -> Path:
    """The bundle unpacked once per worker host into ``<tmp>/cnncourse-dask-<digest>/course``: unpacked into a
    private staging folder and renamed into place, so worker processes of one host never see half a course."""
    home = Path(tempfile.gettempdir()) / f"cnncourse-dask-{bundle.digest}"
    if not (home / "course").is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir=home.parent))
        with tarfile.open(fileobj=io.BytesIO(bundle.archive)) as tar:
            tar.extractall(staging / "course", filter="data")
        try:
            os.rename(staging, home)  # atomic; fails when another process of this host was first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return home / "course"


def bundle_task(bundle: CourseBundle) -> CourseBundle:
    """The task whose result is the bundle (its argument): Dask reruns it if the workers holding it die."""
    return bundle


def forget_bundle(digest: str) -> None:
    """Remove an unpacked bundle (sources, oracle, template gradebook) from this worker's host after a run."""
    shutil.rmtree(Path(tempfile.gettempdir()) / f"cnncourse-dask-{digest}", ignore_errors=True)


def _server():
    from cnncourse.grader.forkserver import ForkServer

    if not hasattr(_SERVERS, "server"):
        _SERVERS.server = ForkServer()
    return _SERVERS.server


def grade_task(bundle: CourseBundle, student: str, files: dict[str, bytes], limits: Limits,
               extension_s: float | None, hard: float) -> dict[str, Any]:
    """The Dask task: grade one submission on this worker; returns ``{"result", "autograded", "log"}``."""
    root = _course_on_worker(bundle)
    crs = Course.load(root, f"sqlite:///{root / 'template.db'}")
    scratch = Path(tempfile.mkdtemp(prefix=f"j-{student}-", dir=root.parent))
    try:
        submitted = scratch / "submitted" / student / bundle.assignment
        for rel, data in files.items():
            target = (submitted / rel).resolve()
            if not target.is_relative_to(submitted.resolve()):
                continue  # never outside the submission folder
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        crs = _with_submitted(crs, scratch)
        job = Job(crs, bundle.assignment, student, scratch / "job", root / "template.db", limits,
                  scratch / "worker.log", extension_s)
        job.scratch.mkdir(mode=0o700)
        started = time.monotonic()
        outcome = _server().run(job, hard, bundle.secret)
        if job.result_file.is_file() and not outcome["killed"]:
            result = Result(**json.loads(job.result_file.read_text()))
        else:
            code = outcome["exitcode"] or 0
            how = (f"grading was stopped after {hard:.0f} s" if outcome["killed"] else
                   f"the worker died ({f'signal {-code}' if code < 0 else f'exit {code}'})")
            result = Result(student, "timed out" if outcome["killed"] else "crashed",
                            seconds=time.monotonic() - started, message=f"{how}; log: {job.log_file.name}")
        notebooks = {p.name: p.read_bytes() for p in sorted(job.autograded.glob("*"))
                     if p.is_file() and (p.suffix == ".ipynb" or p.name == "timestamp.txt")} \
            if job.autograded.is_dir() else {}
        log = job.log_file.read_text(errors="replace")[-20000:] if job.log_file.exists() else ""
        return {"result": asdict(result), "autograded": notebooks, "log": log}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _SubmittedIn(Course):
    """A worker's course whose ``submitted/`` lies in the task's scratch folder."""

    def submitted(self, student: str, assignment: str) -> Path:
        return self.__dict__["_scratch"] / "submitted" / student / assignment


def _with_submitted(crs: Course, scratch: Path) -> Course:
    out = _SubmittedIn(crs.root, crs.config, crs.course_id, crs.db_url)
    object.__setattr__(out, "_scratch", scratch)
    return out


# ---- client side -------------------------------------------------------------------------------------------
def connect(scheduler: Any, workers: int = 2):
    """``(client, close)``: a ``distributed.Client`` for an address (``tcp://HOST:8786``, ``tls://...``), a cluster
    object or a client (used as is, never closed); ``"gateway"`` starts a Dask Gateway cluster of ``workers``
    workers (DaskHub: address and authentication from the ``DASK_GATEWAY__*`` settings) and shuts it down at
    the end. A clear error when Dask (or dask-gateway) is not installed."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise course.CourseError("--scheduler needs Dask: pip install 'cnncourse[dask]'") from exc
    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if scheduler == "gateway":
        try:
            from dask_gateway import Gateway
        except ImportError as exc:
            raise course.CourseError("--scheduler gateway needs dask-gateway (in the DaskHub image): "
                                     "pip install dask-gateway") from exc
        cluster = Gateway().new_cluster()
        cluster.scale(workers)
        client = cluster.get_client(set_as_default=False)

        def close() -> None:
            client.close()
            cluster.shutdown()
        return client, close
    client = Client(scheduler, set_as_default=False)
    return client, client.close


class DaskGradingRun(GradingRun):
    """``GradingRun`` whose workers are Dask tasks; recording (merge, notebooks, journal, bar) is inherited."""

    def run_on(self, scheduler: Any, todo: list[str], progress: bool, workers: int = 2) -> None:
        """Grade ``todo`` on the Dask cluster at ``scheduler`` (an address, a cluster, a Client or ``"gateway"``
        for a new Dask Gateway cluster of ``workers`` workers)."""
        client, close = connect(scheduler, workers)
        futures: dict = {}
        self.digest = ""
        try:
            with client.as_current():
                self._submit_and_collect(client, todo, progress, futures)
        except BaseException:
            client.cancel(list(futures))
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.gb is not None:
                self.gb.close()
            if self.digest:  # the hidden tests do not stay on the workers' disks
                with contextlib.suppress(Exception):
                    client.run(forget_bundle, self.digest)
            close()

    def _submit_and_collect(self, client, todo: list[str], progress: bool, futures: dict) -> None:
        """Make the template and the bundle, submit one task per student, record each as it finishes."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        preload(self.crs, self.assignment)
        template = gradebook.prepare(self.crs, self.assignment, self.work)
        extra = gradebook.extensions(self.crs, self.assignment)
        packed = make_bundle(self.crs, self.assignment, template)
        self.digest = packed.digest
        bundle = client.submit(bundle_task, packed, key=f"cnncourse-bundle-{packed.digest}-{time.time_ns()}",
                               pure=False)
        self.bar = tqdm(total=len(todo), desc=f"grading {self.assignment} on Dask", unit="sub",
                        disable=not progress, dynamic_ncols=True)
        for i, student in enumerate(todo):
            job = Job(self.crs, self.assignment, student, self.work / f"j{i}", template, self.limits,
                      journal.log_path(self.crs, self.assignment, student), extra.get(student))
            earlier = journal.start_attempt(self.crs, self.assignment, student)
            if earlier >= journal.GIVE_UP_AFTER and not self.force:
                self.record(job, Result(student, "crashed", message=f"{earlier} earlier grading runs ended "
                                        "while grading this submission; it is not tried again (--force to retry)"))
                continue
            files = read_submission(self.crs, student, self.assignment, self.limits.submission_mb)
            fut = client.submit(grade_task, bundle, student, files, self.limits, job.extension_s, self.hard,
                                key=f"cnncourse-grade-{self.assignment}-{student}-{time.time_ns()}",
                                pure=False, retries=1)
            futures[fut] = job
        for fut in as_completed(list(futures)):
            self.collect_remote(fut, futures.pop(fut))

    def collect_remote(self, fut, job: Job) -> None:
        """Record a finished task: its Result and autograded notebooks, or a crashed Result when the task failed
        (for example every worker that ran it died)."""
        try:
            out = fut.result()
        except Exception as exc:
            self.record(job, Result(job.student, "crashed", message=f"the Dask task failed: {type(exc).__name__}: "
                                    f"{str(exc)[:300]}"))
            return
        job.autograded.mkdir(parents=True, exist_ok=True)
        for name, data in out["autograded"].items():
            (job.autograded / Path(name).name).write_bytes(data)
        job.log_file.write_text(out["log"])
        self.record(job, Result(**out["result"]))
        shutil.rmtree(job.scratch, ignore_errors=True)
