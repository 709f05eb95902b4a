"""``cnncourse export``: grades from the gradebook, one row per student (each assignment's total, every
question's points, and per test the result and the recognised mistake recorded at grading time in the
journal); ``--format canvas|moodle`` turns the totals into an LMS import (:mod:`cnncourse.grader.lms`)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from cnncourse.grader.layout import Course


def export_rows(root: Path, db_url: str | None = None, assignments: list[str] | None = None
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows: ``assignment`` and ``assignment:question`` (``assignment:notebook:question`` for
    multi-notebook assignments) with its points, then ``...:result`` (passed/failed, from the grading journal)
    and ``...:mistake`` (the recognised mistake of a failing test, ``unrecognised`` when no hint fired); a
    student without a submission gets empty cells. Rows also carry ``email`` and ``lms_user_id`` (not
    columns) for the LMS formats."""
    from nbgrader.api import Gradebook, MissingEntry

    from cnncourse.grader.report.data import entry_tests, journal_entries
    from cnncourse.grader.report.stats import mistake_label

    crs = Course.load(root, db_url)
    with Gradebook(crs.db_url, crs.course_id) as gb:
        names = assignments or [a.name for a in sorted(gb.assignments, key=lambda a: (a.duedate is None,
                                                                                      a.duedate, a.name))]
        columns = ["student", "first_name", "last_name"]
        layout, journal = {}, {}
        for name in names:
            a = gb.find_assignment(name)
            cells = []
            for nb in sorted(a.notebooks, key=lambda n: n.name):
                for cell in sorted(nb.grade_cells, key=lambda c: c.name):
                    label = f"{name}:{cell.name}" if len(a.notebooks) == 1 else f"{name}:{nb.name}:{cell.name}"
                    cells.append((nb.name, cell.name, label))
            layout[name] = cells
            columns += [name] + [f"{c[2]}{part}" for c in cells for part in ("", ":result", ":mistake")]
            journal[name] = {s: entry_tests(e, True) for s, e in journal_entries(crs, name).items()}
        rows = []
        for student in sorted(gb.students, key=lambda s: s.id):
            row: dict[str, Any] = {"student": student.id, "first_name": student.first_name or "",
                                   "last_name": student.last_name or "", "email": student.email or "",
                                   "lms_user_id": student.lms_user_id or ""}
            for name in names:
                try:
                    sub = gb.find_submission(name, student.id)
                except MissingEntry:
                    row.update({name: ""}, **{c[2]: "" for c in layout[name]})
                    continue
                row[name] = sub.score
                scores = {(nb.name, g.name): g.score for nb in sub.notebooks  # score includes extra credit
                          for g in nb.grades}
                tests = journal[name].get(student.id, {})
                for nb_name, cell, label in layout[name]:
                    row[label] = scores.get((nb_name, cell), 0.0)
                    result = tests.get(f"{nb_name}:{cell}")
                    row[f"{label}:result"] = "" if result is None else "passed" if result.get("passed") else "failed"
                    row[f"{label}:mistake"] = ("" if result is None or result.get("passed")
                                               else mistake_label(result.get("hint")))
            rows.append(row)
    return columns, rows


def render(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV or JSON text."""
    if fmt == "json":
        return json.dumps([{c: r.get(c, "") for c in columns} for r in rows], indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
