"""Gradebook access for ``cnncourse grade``: the template gradebook the workers copy, reading one
submission's grades back, and merging them into the class gradebook in one transaction (manual scores and
comments kept)."""
from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import zlib
from pathlib import Path

from cnncourse import course
from cnncourse.grader.layout import Course


def fast_alembic_version() -> None:
    """nbgrader stamps a new gradebook with ``alembic heads`` run as a subprocess (10 s on a loaded 2-core
    machine); have it read the same head revision in-process (nbgrader looks the function up at call time)."""
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


def scratch_without_fsync() -> None:
    """In a worker process: SQLite connections skip fsync (``PRAGMA synchronous=OFF``). A worker only
    touches its scratch copy of the gradebook, which the parent reads back and merges into the class
    gradebook (with the class database's own durability); nbgrader commits every cell's grade on its own,
    and the syncs cost 0.2-0.3 s of a conv_arithmetic submission."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def no_fsync(connection, _record) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", no_fsync)


def one_engine_per_database() -> None:
    """In a worker process: every nbgrader ``Gradebook`` on the same database shares one SQLAlchemy engine.
    nbgrader makes a new engine per ``Gradebook`` (the autograder opens eight per submission), and each new
    engine compiles every statement again: 47 compilations per conv_arithmetic submission, 29 with one engine
    (17 ms of the worker's CPU). ``Gradebook.close`` still disposes of the engine's connections; the next
    ``Gradebook`` opens new ones on the same engine, with its compiled-statement cache."""
    import nbgrader.api
    from sqlalchemy import create_engine

    engines: dict[tuple, object] = {}

    def shared_engine(url, **kwargs):
        key = (str(url), tuple(sorted(kwargs.items())))
        if key not in engines:
            engines[key] = create_engine(url, **kwargs)
        return engines[key]

    nbgrader.api.create_engine = shared_engine


def quiet_log() -> logging.Logger:
    """A logger that shows only nbgrader's errors (for converters run in-process)."""
    log = logging.getLogger("cnncourse.grader.nbgrader")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[nbgrader] %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.ERROR)
        log.propagate = False
    return log


def generate(crs: Course, assignment: str, workdir: Path, db_url: str) -> None:
    """nbgrader's ``GenerateAssignment`` on a scratch copy of the assignment, recording its cells into
    ``db_url``; the course's own ``assignments/`` is not touched."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    scratch = workdir / "course"
    shutil.copytree(crs.source(assignment), scratch / course.SOURCE_DIR / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cfg = crs.nbgrader_config(
        CourseDirectory={"root": str(scratch), "db_url": db_url, "assignment_id": assignment},
        GenerateAssignment={"force": True, "create_assignment": True})
    try:
        GenerateAssignment(coursedir=CourseDirectory(config=cfg), config=cfg, log=quiet_log()).start()
    except Exception as exc:
        raise course.CourseError(f"nbgrader generate_assignment {assignment} failed: {exc} "
                                 f"(check solutions/{assignment}/ with `cnncourse release {assignment}`)") from exc


def structure(db_url: str, cid: str, assignment: str):
    """The assignment's notebooks and cells in a gradebook (None when it does not know the assignment)."""
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


@contextlib.contextmanager
def shared_setup_lock(crs: Course):
    """Serialise setting up the class gradebook (its tables, the assignment's cells) between grading runs
    from different course folders that share one PostgreSQL gradebook (two graders on a hub): both would
    create the same tables and rows at once, and one would fail. A PostgreSQL advisory lock, held by this
    connection; a SQLite class gradebook lives in the course folder, which the class lock already guards."""
    if not crs.db_url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text

    key = zlib.crc32(f"cnncourse gradebook set-up {crs.course_id}".encode())
    engine = create_engine(crs.db_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def ensure_schema(crs: Course) -> None:
    """Open the class gradebook once, creating its tables when it is new (under ``shared_setup_lock``)."""
    from nbgrader.api import Gradebook

    if crs.sqlite_file is None or not crs.sqlite_file.is_file():
        fast_alembic_version()  # a new (or a server's) gradebook may need its version stamped
    with shared_setup_lock(crs), Gradebook(crs.db_url, crs.course_id):
        pass


def prepare(crs: Course, assignment: str, workdir: Path) -> Path:
    """Make the workers' template gradebook and make sure the class gradebook knows the assignment with the
    same cells (generate_assignment runs on it only if not); the template gets the class due date."""
    from nbgrader.api import Gradebook

    fast_alembic_version()  # the template is a new gradebook
    template = workdir / "template"
    template.mkdir()
    url = f"sqlite:///{template / 'gradebook.db'}"
    generate(crs, assignment, template / "gen", url)
    class_file = crs.sqlite_file
    with shared_setup_lock(crs):
        if class_file is not None and not class_file.exists():  # a new SQLite class gradebook: the template
            class_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template / "gradebook.db", class_file)
        elif structure(crs.db_url, crs.course_id, assignment) != structure(url, crs.course_id, assignment):
            generate(crs, assignment, workdir / "class-gen", crs.db_url)
        with Gradebook(crs.db_url, crs.course_id) as gb:
            duedate = gb.find_assignment(assignment).duedate
    if duedate is not None:
        with Gradebook(url, crs.course_id) as gb:
            gb.update_or_create_assignment(assignment, duedate=duedate)
    shutil.rmtree(template / "gen")  # a copy of the source: not kept longer than needed
    return template / "gradebook.db"


def extensions(crs: Course, assignment: str) -> dict[str, float]:
    """Seconds of extension per student in the class gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(crs.db_url, crs.course_id) as gb:
        return {s.student.id: s.extension.total_seconds() for s in gb.assignment_submissions(assignment)
                if s.extension}


def collect(db_url: str, cid: str, assignment: str, student: str) -> tuple[dict, float, float, str | None]:
    """``(notebooks, score, max_score, timestamp)`` of one submission in a (worker's) gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, cid) as gb:
        max_score = float(gb.find_assignment(assignment).max_score)
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return {}, 0.0, max_score, None
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
        return notebooks, float(sub.score), max_score, stamp


MERGE_ATTEMPTS = 3  # graders sharing a class gradebook (PostgreSQL on a hub) may add the same student at once


def merge(crs: Course, assignment: str, student: str, notebooks: dict, timestamp: str | None,
          gb=None) -> None:
    """Write one student's autograde result into the class gradebook in a single transaction, replacing an
    earlier submission of the same assignment but keeping its manual scores, comments and extension.
    ``notebooks`` as returned by ``collect`` (empty: every cell scores 0). ``gb``: an open class
    ``Gradebook`` to reuse (a grading run keeps one: its engine compiles each query once), else one is opened.
    When another grader of the same class gradebook wrote this student's rows first (a unique key refused
    ours), the transaction is rolled back and written again over theirs, as a regrade would."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import IntegrityError

    own = gb is None
    gb = Gradebook(crs.db_url, crs.course_id) if own else gb
    try:
        for attempt in range(1, MERGE_ATTEMPTS + 1):
            try:
                _write_submission(gb, assignment, student, notebooks, timestamp)
                return
            except IntegrityError:
                gb.db.rollback()
                if attempt == MERGE_ATTEMPTS:
                    raise
            except BaseException:
                gb.db.rollback()
                raise
    finally:
        if own:
            gb.close()


def _write_submission(gb, assignment: str, student: str, notebooks: dict, timestamp: str | None) -> None:
    """``merge``'s one transaction (committed here; the caller rolls back on any error)."""
    from nbgrader import utils
    from nbgrader.api import Comment, Grade, Student, SubmittedAssignment, SubmittedNotebook

    s = gb.db
    a = gb.find_assignment(assignment)
    who = s.get(Student, student)
    if who is None:
        who = Student(id=student)
        s.add(who)
    old = s.query(SubmittedAssignment).filter_by(assignment_id=a.id, student_id=student).one_or_none()
    keep: dict[tuple[str, str, str], dict] = {}
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
    stamp = utils.parse_utc(timestamp) if timestamp else None
    with s.no_autoflush:  # build the whole submission, then write it at once
        sub = SubmittedAssignment(assignment=a, student=who, timestamp=stamp, extension=extension)
        s.add(sub)
        for notebook in a.notebooks:
            data = notebooks.get(notebook.name, {})
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


def submitted_students(crs: Course, assignment: str) -> set[str]:
    """Students with a submission of ``assignment`` in the class gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(crs.db_url, crs.course_id) as gb:
        try:
            return {s.student.id for s in gb.assignment_submissions(assignment)}
        except Exception:  # the assignment is not in the gradebook yet
            return set()
