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


def _from_gradebook(crs: Course, assignment: str) -> tuple[float, list[Question], dict[str, Submission]]:
    from nbgrader.api import (BaseCell, Gradebook, Grade, MissingEntry, Notebook, SubmittedAssignment,
                              SubmittedNotebook)

    with Gradebook(crs.db_url, crs.course_id) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            raise course.CourseError(f"the gradebook ({crs.db_url.split('@')[-1]}) has no assignment "
                                     f"{assignment!r}: grade it first with `cnncourse grade {assignment}`") from None
        multi = len(a.notebooks) > 1
        questions = [Question(nb.name, c.name, float(c.max_score), f"{nb.name}:{c.name}" if multi else c.name)
                     for nb in a.notebooks for c in nb.grade_cells]
        order = _notebook_order(crs, assignment)
        questions.sort(key=lambda q: (q.notebook, order.get((q.notebook, q.grade_id), 1 << 30), q.grade_id))
        label = {(q.notebook, q.grade_id): q.label for q in questions}
        subs = {s.id: Submission(s.id, MISSING) for s in gb.students}
        rows = (gb.db.query(SubmittedAssignment.student_id, SubmittedAssignment.timestamp,
                            SubmittedAssignment.extension)
                .filter(SubmittedAssignment.assignment_id == a.id).all())
        for student, stamp, extension in rows:
            due = a.duedate + extension if a.duedate is not None and extension is not None else a.duedate
            late = max(0.0, (stamp - due).total_seconds()) if stamp is not None and due is not None else 0.0
            subs[student] = Submission(student, "graded", seconds_late=late)
        grades = (gb.db.query(SubmittedAssignment.student_id, Notebook.name, BaseCell.name, Grade.score)
                  .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
                  .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                  .join(Notebook, SubmittedNotebook.notebook_id == Notebook.id)
                  .join(BaseCell, Grade.cell_id == BaseCell.id)
                  .filter(SubmittedAssignment.assignment_id == a.id).all())
        for student, nb_name, cell, score in grades:
            if (nb_name, cell) in label:
                subs[student].points[label[(nb_name, cell)]] = float(score or 0.0)
        max_score = float(a.max_score)
    for sub in subs.values():
        sub.score = sum(sub.points.values())
    return max_score, questions, subs


def _merge_journal(crs: Course, assignment: str, questions: list[Question], subs: dict[str, Submission]) -> None:
    """Status, time, message and per-test results from the journal entries (students graded by
    ``cnncourse grade``); a submission in the gradebook without an entry keeps status ``graded``."""
    folder = crs.journal_dir(assignment)
    multi = len({q.notebook for q in questions}) > 1
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        student = entry.get("student") or path.stem
        sub = subs.setdefault(student, Submission(student, entry.get("status", "graded")))
        sub.status = entry.get("status") or sub.status
        sub.seconds = float(entry.get("seconds") or 0.0)
        sub.message = entry.get("message") or ""
        for nb_name, tests in (entry.get("tests") or {}).items():
            for grade_id, result in tests.items():
                sub.tests[f"{nb_name}:{grade_id}" if multi else grade_id] = result


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
