"""``cnncourse export``: grades from the gradebook, one row per student (each assignment's total and every
question's points)."""
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
    multi-notebook assignments); a student without a submission gets empty cells."""
    from nbgrader.api import Gradebook, MissingEntry

    crs = Course.load(root, db_url)
    with Gradebook(crs.db_url, crs.course_id) as gb:
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


def render(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV or JSON text."""
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
