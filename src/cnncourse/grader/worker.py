"""One worker process grades one submission, in a scratch course of its own, and exits.

The worker (outside the sandbox) copies the submission in (regular files only, ``intake``), repairs and
rebuilds its notebooks (``repair``), copies the template gradebook, then runs nbgrader's ``Autograde`` with
the course's configured preprocessors (``nbgrader_config.py``: hidden-test placement and checking around
``SandboxedExecute``). It writes ``result.json`` (a ``Result``) into its scratch folder and its log next to
the journal. Only the kernel runs in the sandbox; the gradebook copy and the source stay with the worker.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from nbgrader.converters import Autograde

from cnncourse.grader import gradebook, intake, procs, repair
from cnncourse.grader.layout import Course
from cnncourse.grader.limits import Limits
from cnncourse.grader.result import Result, status_of

MB = 1024 * 1024


@dataclass
class Job:
    """One submission to grade."""

    course: Course
    assignment: str
    student: str
    scratch: Path
    template_db: Path
    limits: Limits
    log_file: Path
    extension_s: float | None = None  # the student's extension in the class gradebook (late penalties)
    zygote: str = ""  # socket of the run's kernel zygote ("" = start every kernel cold)

    @property
    def result_file(self) -> Path:
        return self.scratch / "result.json"

    @property
    def autograded(self) -> Path:
        return self.scratch / "course" / "autograded" / self.student / self.assignment


class ObservingAutograde(Autograde):
    """nbgrader's ``Autograde`` that keeps what the preprocessors returned in ``resources["cnncourse"]``,
    per notebook (``observed``), instead of dropping it after writing the notebook."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.observed: dict[str, dict] = {}

    def write_single_notebook(self, output, resources):
        if not self._sanitizing:
            self.observed[resources.get("unique_key", "notebook")] = dict(resources.get("cnncourse", {}))
        return super().write_single_notebook(output, resources)


def config_for(job: Job, root: Path, db: Path):
    """The course config with this job's scratch course, gradebook copy and limits."""
    lim, crs = job.limits, job.course
    return crs.nbgrader_config(
        CourseDirectory={"root": str(root), "db_url": f"sqlite:///{db}", "assignment_id": job.assignment,
                         "student_id": job.student, "course_id": crs.course_id,
                         "source_directory": str(crs.root / "solutions")},
        Autograde={"create_student": True, "force": True},
        Execute={"timeout": lim.timeout_cell},
        # the kernel is thrown away after its one notebook: kill it at once instead of asking it to shut down
        # and waiting (nbclient's graceful shutdown costs a round trip and up to seconds per submission)
        SandboxedExecute={"shutdown_kernel": "immediate", "timeout": lim.timeout_cell,
                          "timeout_notebook": lim.timeout_notebook,
                          "output_bytes": lim.output_bytes, "notebook_output_bytes": lim.notebook_output_bytes,
                          "max_procs": lim.max_procs},
        SandboxedKernelManager={"sandbox": lim.sandbox, "memory_mb": lim.memory_mb, "file_mb": lim.file_mb,
                                "disk_mb": lim.disk_mb, "threads": lim.threads, "course_root": str(crs.root),
                                "scratch_dir": str(job.scratch), "zygote": job.zygote})


def grade_submission(job: Job) -> Result:
    """Grade ``job`` in its scratch folder; the class gradebook and course are only read."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    crs, root = job.course, job.scratch / "course"
    submitted = root / "submitted" / job.student / job.assignment
    refused = intake.copy_submission(crs.submitted(job.student, job.assignment), submitted,
                                     job.limits.submission_mb * MB)
    db = root / "gradebook.db"
    shutil.copyfile(job.template_db, db)
    if job.extension_s:
        with Gradebook(f"sqlite:///{db}", crs.course_id) as gb:
            gb.update_or_create_student(job.student)
            gb.update_or_create_submission(job.assignment, job.student,
                                           extension=datetime.timedelta(seconds=job.extension_s))
    notes = repair.repair_submission(crs.source(job.assignment), submitted)
    cfg = config_for(job, root, db)
    failure, observed = "", {}
    if any(submitted.glob("*.ipynb")):
        converter = ObservingAutograde(coursedir=CourseDirectory(config=cfg), config=cfg)
        try:
            converter.start()
        except BaseException as exc:  # NbGraderException after nbgrader logged the cause; keep going
            failure = f"nbgrader failed: {type(exc).__name__}: {exc} (see {job.log_file.name})"
        observed = converter.observed
    notebooks, score, max_score, stamp = gradebook.collect(f"sqlite:///{db}", crs.course_id, job.assignment,
                                                           job.student)
    events = [e for obs in observed.values() for e in obs.get("events", [])]
    status, messages = status_of(events, notes.invalid, notes.missing, failure)
    if notes.renamed:
        messages.append("graded renamed notebook " + ", ".join(f"{a} as {b}" for a, b in notes.renamed.items()))
    if notes.duplicated:
        messages.append("duplicated graded cells (first copy graded, later copies ignored) " + ", ".join(
            f"{nb}: {', '.join(ids)}" for nb, ids in notes.duplicated.items()))
    if notes.restored:
        messages.append("restored deleted cells " + ", ".join(
            f"{nb}: {', '.join(ids)}" for nb, ids in notes.restored.items()))
    if refused:
        messages.append("files not graded: " + "; ".join(refused))
    if status in ("crashed", "timed out") and (notes.invalid or notes.missing):
        messages.append("invalid/missing: " + ", ".join(notes.invalid + notes.missing))
    tests = {nb: obs["tests"] for nb, obs in observed.items() if obs.get("tests")}
    return Result(job.student, status, score, max_score, message="; ".join(messages), timestamp=stamp,
                  notebooks=notebooks, tests=tests)


def check_schemas_once() -> None:
    """In a worker process: ``jsonschema.validate`` checks each distinct schema against its meta-schema once.
    nbgrader's ``CheckCellMetadata`` validates every cell's metadata with ``jsonschema.validate``, which first
    checks nbgrader's own (fixed) schema, on every call: 32 checks per conv_arithmetic notebook, 13 ms of the
    worker's CPU. Every instance is still validated, and an invalid one raises the same error (``best_match``)."""
    import jsonschema
    from jsonschema import exceptions, validators

    checked: set[tuple] = set()

    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is None:
            cls = validators.validator_for(schema)
        key = (cls, json.dumps(schema, sort_keys=True, default=repr))
        if key not in checked:
            cls.check_schema(schema)
            checked.add(key)
        error = exceptions.best_match(cls(schema, *args, **kwargs).iter_errors(instance))
        if error is not None:
            raise error

    validate.__doc__ = jsonschema.validate.__doc__
    jsonschema.validate = validate


def lighten_nbgrader() -> None:
    """What a worker process changes in nbgrader's libraries, for its own scratch gradebook only: no fsync,
    one SQLAlchemy engine per database, nbgrader's metadata schema checked once."""
    gradebook.scratch_without_fsync()
    gradebook.one_engine_per_database()
    check_schemas_once()


def worker_main(job: Job) -> None:
    """Entry point of a forked worker: grade one submission, write ``result.json``, exit (never returns)."""
    code, start = 0, time.monotonic()
    try:
        os.setsid()  # Ctrl-C reaches only the parent, which stops the workers itself
        procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)
        procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(job.log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(job.scratch / "runtime")
        os.environ["PYTHONWARNINGS"] = "ignore"
        lighten_nbgrader()
        if "torch" in sys.modules:  # the oracles' torch shares the cores with the other workers and kernels
            sys.modules["torch"].set_num_threads(max(1, job.limits.threads))
        try:
            result = grade_submission(job)
        finally:
            procs.kill_tree(os.getpid(), include_self=False)
    except BaseException as exc:
        result = Result(job.student, "crashed", message=f"grader error: {type(exc).__name__}: {exc} "
                                                        f"(see {job.log_file})")
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
