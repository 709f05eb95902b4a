"""What the class report reads, without running any student code: points per question and lateness from
the gradebook (nbgrader's API, so SQLite and PostgreSQL alike), status, grading time and per-test results
(``passed``, ``message``, ``hint``) from the grading journal (``autograded/.cnncourse-grade/<assignment>/``),
and the submitted notebooks' solution cells for the similarity check."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cnncourse import course
from cnncourse.grader.layout import Course

MISSING = "missing"  # on the gradebook's roster, but no submission and no journal entry


@dataclass(frozen=True)
class Question:
    """One graded cell of the assignment (``label``: ``grade_id``, or ``notebook:grade_id`` when the
    assignment has several notebooks)."""

    notebook: str
    grade_id: str
    max_score: float
    label: str


@dataclass
class Submission:
    """One student's row of the report. ``points`` and ``tests`` are keyed by question label; a test result
    is ``{"passed": bool, "message": str, "hint": str | None}`` as recorded at grading time."""

    student: str
    status: str
    score: float = 0.0
    seconds: float = 0.0
    seconds_late: float = 0.0
    message: str = ""
    points: dict[str, float] = field(default_factory=dict)
    tests: dict[str, dict] = field(default_factory=dict)


@dataclass
class ClassData:
    """Everything the report needs about one assignment."""

    assignment: str
    max_score: float
    questions: list[Question]
    submissions: dict[str, Submission]


def _notebook_order(crs: Course, assignment: str) -> dict[tuple[str, str], int]:
    """Position of each graded cell in the source notebooks (the report lists questions in that order)."""
    order = {}
    for path in sorted(crs.source(assignment).glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid:
                order[(path.stem, gid)] = i
    return order


def _tables():
    """The columns the report reads of nbgrader's gradebook schema (SQLAlchemy Core; the types make
    SQLite's and PostgreSQL's dates and intervals read the same)."""
    from sqlalchemy import Column, DateTime, Float, Interval, MetaData, String, Table

    md = MetaData()
    s = String(128)
    return {
        "assignment": Table("assignment", md, Column("id", s), Column("name", s), Column("duedate", DateTime),
                            Column("course_id", s)),
        "notebook": Table("notebook", md, Column("id", s), Column("name", s), Column("assignment_id", s)),
        "base_cell": Table("base_cell", md, Column("id", s), Column("name", s), Column("notebook_id", s)),
        "grade_cells": Table("grade_cells", md, Column("id", s), Column("max_score", Float)),
        "student": Table("student", md, Column("id", s)),
        "submitted_assignment": Table("submitted_assignment", md, Column("id", s), Column("assignment_id", s),
                                      Column("student_id", s), Column("timestamp", DateTime),
                                      Column("extension", Interval)),
        "submitted_notebook": Table("submitted_notebook", md, Column("id", s), Column("assignment_id", s),
                                    Column("notebook_id", s)),
        "grade": Table("grade", md, Column("cell_id", s), Column("notebook_id", s), Column("auto_score", Float),
                       Column("manual_score", Float), Column("extra_credit", Float)),
    }


def _from_gradebook(crs: Course, assignment: str) -> tuple[float, list[Question], dict[str, Submission]]:
    """Questions, roster, lateness and points per question. Read with SQLAlchemy Core from nbgrader's tables
    rather than ``nbgrader.api``: importing nbgrader loads its Jupyter server extensions (4-9 s here), more
    than the whole report of a 300-student class; scores follow nbgrader's rule (manual score if set, else
    the autograder's, plus extra credit)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import SQLAlchemyError

    where = crs.db_url.split("@")[-1]  # never print a password
    if crs.sqlite_file is not None and not crs.sqlite_file.is_file():
        raise course.CourseError(f"no gradebook at {where}: grade the class first (`cnncourse grade "
                                 f"{assignment}`) or give the gradebook with --db URL")
    t = _tables()
    a, nb, bc, gc, sa, sn, g = (t[k] for k in ("assignment", "notebook", "base_cell", "grade_cells",
                                               "submitted_assignment", "submitted_notebook", "grade"))
    engine = create_engine(crs.db_url)
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise course.CourseError(f"cannot open the gradebook {where}: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0]}") from None
    try:
        with conn:
            found = conn.execute(select(a.c.id, a.c.duedate).where(a.c.name == assignment,
                                                                    a.c.course_id == crs.course_id)).first()
            if found is None:
                raise course.CourseError(f"the gradebook ({where}) has no assignment "
                                         f"{assignment!r} in course {crs.course_id!r}: grade it first with "
                                         f"`cnncourse grade {assignment}`")
            aid, due = found
            cells = conn.execute(select(nb.c.name, bc.c.name, gc.c.max_score).select_from(
                gc.join(bc, gc.c.id == bc.c.id).join(nb, bc.c.notebook_id == nb.c.id)).where(
                nb.c.assignment_id == aid)).all()
            roster = [r[0] for r in conn.execute(select(t["student"].c.id))]
            subs_rows = conn.execute(select(sa.c.student_id, sa.c.timestamp, sa.c.extension).where(
                sa.c.assignment_id == aid)).all()
            grades = conn.execute(select(sa.c.student_id, nb.c.name, bc.c.name, g.c.auto_score, g.c.manual_score,
                                         g.c.extra_credit).select_from(
                g.join(sn, g.c.notebook_id == sn.c.id).join(sa, sn.c.assignment_id == sa.c.id)
                .join(nb, sn.c.notebook_id == nb.c.id).join(bc, g.c.cell_id == bc.c.id)).where(
                sa.c.assignment_id == aid)).all()
    except SQLAlchemyError as exc:  # not an nbgrader gradebook, or a broken one
        raise course.CourseError(f"cannot read the gradebook {where} (is it nbgrader's?): "
                                 f"{str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    multi = len({n for n, _, _ in cells}) > 1
    questions = [Question(n, c, float(m or 0.0), f"{n}:{c}" if multi else c) for n, c, m in cells]
    order = _notebook_order(crs, assignment)
    questions.sort(key=lambda q: (q.notebook, order.get((q.notebook, q.grade_id), 1 << 30), q.grade_id))
    label = {(q.notebook, q.grade_id): q.label for q in questions}
    subs = {s: Submission(s, MISSING) for s in roster}
    for student, stamp, extension in subs_rows:
        deadline = due + extension if due is not None and extension is not None else due
        late = max(0.0, (stamp - deadline).total_seconds()) if stamp is not None and deadline is not None else 0.0
        subs[student] = Submission(student, "graded", seconds_late=late)
    for student, nb_name, cell, auto, manual, extra in grades:
        if (nb_name, cell) in label:
            score = (manual if manual is not None else auto or 0.0) + (extra or 0.0)
            subs[student].points[label[(nb_name, cell)]] = float(score)
    for sub in subs.values():
        sub.score = sum(sub.points.values())
    return sum(q.max_score for q in questions), questions, subs


def journal_entries(crs: Course, assignment: str) -> dict[str, dict]:
    """``{student: journal entry}`` of an assignment (unreadable entries skipped)."""
    folder = crs.journal_dir(assignment)
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[entry.get("student") or path.stem] = entry
    return out


def entry_tests(entry: dict, multi: bool) -> dict[str, dict]:
    """The per-test results of a journal entry keyed like the questions (``notebook:grade_id`` if ``multi``)."""
    return {f"{nb}:{gid}" if multi else gid: result for nb, tests in (entry.get("tests") or {}).items()
            for gid, result in tests.items()}


def _merge_journal(crs: Course, assignment: str, questions: list[Question], subs: dict[str, Submission]) -> None:
    """Status, time, message and per-test results from the journal entries (students graded by
    ``cnncourse grade``); a submission in the gradebook without an entry keeps status ``graded``."""
    multi = len({q.notebook for q in questions}) > 1
    for student, entry in journal_entries(crs, assignment).items():
        sub = subs.setdefault(student, Submission(student, entry.get("status", "graded")))
        sub.status = entry.get("status") or sub.status
        sub.seconds = float(entry.get("seconds") or 0.0)
        sub.message = entry.get("message") or ""
        sub.tests.update(entry_tests(entry, multi))


def load_class(root: Path, assignment: str, db_url: str | None = None) -> ClassData:
    """The report's data for ``assignment`` of the course at ``root`` (``db_url`` overrides the config's)."""
    crs = Course.load(root, db_url)
    max_score, questions, subs = _from_gradebook(crs, assignment)
    _merge_journal(crs, assignment, questions, subs)
    return ClassData(assignment, max_score, questions, dict(sorted(subs.items())))


def submitted_notebooks(root: Path, assignment: str, student: str) -> list[Path]:
    """The student's submitted notebooks (``submitted/``; the autograded copies when those are gone)."""
    for base in ("submitted", "autograded"):
        found = sorted((Path(root) / base / student / assignment).glob("*.ipynb"))
        if found:
            return found
    return []


def solution_sources(path: Path) -> dict[str, str]:
    """``{grade_id: source}`` of the solution cells of a notebook (an unreadable notebook gives ``{}``)."""
    try:  # plain JSON: nbformat's validation costs more than the whole comparison
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except Exception:  # a damaged submission: nothing to compare
        return {}
    out = {}
    for cell in cells if isinstance(cells, list) else []:
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
        if cell.get("cell_type") == "code" and meta.get("solution") and meta.get("grade_id"):
            source = cell.get("source", "")
            out.setdefault(meta["grade_id"], "".join(source) if isinstance(source, list) else str(source))
    return out
