"""Grades as the CSV a learning-management system imports (``cnncourse export --format canvas|moodle``).

nbgrader knows students by the id of their ``submitted/<student>/`` folder; an LMS knows them by its own ids.
A roster file maps one to the other: a CSV with a header row and one row per student, column ``student``
(the nbgrader id) required, any of these optional (empty cells allowed):

    student,name,canvas_id,sis_user_id,sis_login_id,section,email,id_number
    ada,"Lovelace, Ada",10231,S0001,ada@uni.example,CNN-01,ada@uni.example,S0001

* Canvas (gradebook import): columns ``Student, ID, SIS User ID, SIS Login ID, Section`` then one column per
  assignment (its nbgrader name; Canvas asks which of its assignments each new column is). ``ID`` is
  ``canvas_id`` (else the gradebook's ``lms_user_id``), ``Student`` is ``name`` (else "last, first" from the
  gradebook, else the nbgrader id), ``SIS User ID``/``SIS Login ID``/``Section`` from the roster.
* Moodle (Grades > Import > CSV file): columns ``ID number, Email address`` then one column per assignment;
  in the import form map "ID number" (or "Email address") to the user field of the same name.
  ``ID number`` is ``id_number`` (else the nbgrader id), ``Email address`` is ``email`` (else the gradebook's).

With a roster, every student with grades must be in it (a grade is never posted to a guessed person).
A student without a submission gets an empty cell (the LMS leaves that grade as it was).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cnncourse import course

FORMATS = ("canvas", "moodle")
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["ID number", "Email address"]
ROSTER_FIELDS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section", "email", "id_number")


def read_roster(path: Path) -> dict[str, dict[str, str]]:
    """``{nbgrader id: roster row}`` of a roster CSV (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise course.CourseError(f"--roster {path}: no such file (a CSV with a 'student' column: see "
                                 "`cnncourse export --help` and README 'Grading a class')")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "student" not in (reader.fieldnames or []):
            raise course.CourseError(f"--roster {path}: the header has no 'student' column (the nbgrader id); it "
                                     f"has {reader.fieldnames}; expected some of {', '.join(ROSTER_FIELDS)}")
        return {row["student"].strip(): {k: (v or "").strip() for k, v in row.items() if k}
                for row in reader if (row.get("student") or "").strip()}


def lms_table(fmt: str, rows: list[dict[str, Any]], assignments: list[str],
              roster: dict[str, dict[str, str]] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows for ``fmt`` from ``export_rows``'s rows (which carry ``email``/``lms_user_id``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if roster is not None:
        unknown = [r["student"] for r in rows if r["student"] not in roster
                   and any(r.get(a) not in ("", None) for a in assignments)]
        if unknown:
            raise course.CourseError(f"--roster: {len(unknown)} student(s) with grades are not in the roster: "
                                     f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}; add a row "
                                     "for each (column 'student' = their submitted/ folder name)")
    out = []
    for r in rows:
        info = (roster or {}).get(r["student"], {})
        name = ", ".join(x for x in (r.get("last_name"), r.get("first_name")) if x) or r["student"]
        if fmt == "canvas":
            row = {"Student": info.get("name") or name, "ID": info.get("canvas_id") or r.get("lms_user_id") or "",
                   "SIS User ID": info.get("sis_user_id", ""), "SIS Login ID": info.get("sis_login_id", ""),
                   "Section": info.get("section", "")}
        else:
            row = {"ID number": info.get("id_number") or r["student"],
                   "Email address": info.get("email") or r.get("email") or ""}
        row.update({a: r.get(a, "") for a in assignments})
        out.append(row)
    return (CANVAS_COLUMNS if fmt == "canvas" else MOODLE_COLUMNS) + list(assignments), out


def render_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
