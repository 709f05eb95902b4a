"""``cnncourse report ASSIGNMENT``: what the class got wrong, test by test.

Reads the gradebook and the grading journal (:mod:`.data`; student code is never run), computes the item
analysis and the mistakes behind each test's failures (:mod:`.stats`), compares the submitted code
(:mod:`.similarity`), and writes ``report.html`` (:mod:`.html`, figures from :mod:`.figures`) and CSV files
into the output folder (default ``reports/<assignment>/``).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.grader.report import data as data_mod
from cnncourse.grader.report import figures, similarity, stats
from cnncourse.grader.report.data import ClassData
from cnncourse.grader.report.similarity import Pair, Settings

__all__ = ["Report", "build", "write", "summary_text", "Settings"]

MAX_SIDE_BY_SIDE = 40  # pairs shown with their code on the page (all pairs are in similar_pairs.csv)


@dataclass
class Report:
    """Everything the page, the CSV files and the text summary show."""

    data: ClassData
    distribution: stats.Distribution
    questions: list[stats.QuestionStats]
    tests: list[stats.TestStats]
    statuses: dict[str, int]
    slowest: list[data_mod.Submission]
    settings: Settings
    pairs: list[Pair]
    clusters: list[list[str]]
    compared: int
    figures: dict[str, bytes] = field(default_factory=dict)


def _starters(root: Path, assignment: str) -> dict[str, str]:
    """``{grade_id: released source}`` of the solution cells of the assignment's source notebooks."""
    out = {}
    for path in sorted((Path(root) / "solutions" / assignment).glob("*.ipynb")):
        out.update({g: similarity.starter_code(s) for g, s in data_mod.solution_sources(path).items()})
    return out


def compare_code(root: Path, data: ClassData, settings: Settings) -> tuple[list[Pair], int]:
    """Similar pairs among the submitted notebooks of the students with a submission; and how many
    submissions had code to compare."""
    starters = similarity.starter_statements(_starters(root, data.assignment))
    cells = {}
    for student, sub in data.submissions.items():
        if sub.status == data_mod.MISSING:
            continue
        found: dict[str, str] = {}
        for path in data_mod.submitted_notebooks(root, data.assignment, student):
            found.update(data_mod.solution_sources(path))
        if found:
            cells[student] = found
    prints = {s: similarity.fingerprint(c, starters, settings.k) for s, c in cells.items()}
    pairs = similarity.similar_pairs(prints, settings)
    for p in pairs[:MAX_SIDE_BY_SIDE]:
        p.functions = similarity.side_by_side(p, cells)
    return pairs, len(cells)


def build(root: Path, assignment: str, db_url: str | None = None, settings: Settings = Settings(),
          with_figures: bool = True) -> Report:
    """The report of ``assignment`` (no files written)."""
    d = data_mod.load_class(root, assignment, db_url)
    pairs, compared = compare_code(root, d, settings)
    r = Report(d, stats.distribution(d), stats.questions(d), stats.tests(d), stats.status_counts(d),
               stats.slowest(d), settings, pairs, similarity.clusters(pairs), compared)
    if with_figures:
        r.figures = {"histogram": figures.histogram(r.distribution), "tests": figures.test_bars(r.tests)}
    return r


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def write(r: Report, out: Path) -> list[Path]:
    """Write ``report.html`` and the CSV files (students, questions, tests, mistakes, similar pairs) into
    ``out``; returns the files written."""
    from cnncourse.grader.report.html import render

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(render(r), encoding="utf-8")
    tests = [t.label for t in r.tests]
    students = [[s.student, stats.STATUS_LABELS.get(s.status, s.status), f"{s.score:g}", f"{s.seconds:.1f}",
                 f"{s.seconds_late:.0f}", *[s.points.get(q.label, "") for q in r.data.questions],
                 *[("" if t not in s.tests else "passed" if s.tests[t].get("passed")
                    else stats.mistake_label(s.tests[t].get("hint"))) for t in tests]]
                for s in r.data.submissions.values()]
    return [out / "report.html",
            _csv(out / "students.csv", ["student", "status", "score", "grading_seconds", "seconds_late",
                                        *[q.label for q in r.data.questions], *[f"{t}:result" for t in tests]],
                 students),
            _csv(out / "questions.csv", ["question", "max_score", "mean", "difficulty", "discrimination"],
                 [[q.label, q.max_score, round(q.mean, 4), round(q.difficulty, 4),
                   "" if q.discrimination is None else round(q.discrimination, 4)] for q in r.questions]),
            _csv(out / "tests.csv", ["test", "students", "passed", "failed", "pass_rate"],
                 [[t.label, t.recorded, t.recorded - t.failed, t.failed, round(t.pass_rate, 4)] for t in r.tests]),
            _csv(out / "mistakes.csv", ["test", "mistake", "students", "share_of_failing"],
                 [[t.label, m, n, round(n / t.failed, 4)] for t in r.tests for m, n in t.mistakes]),
            _csv(out / "similar_pairs.csv", ["student_a", "student_b", "similarity", "shared_fragments", "cluster"],
                 [[p.a, p.b, round(p.score, 4), p.shared,
                   next(i for i, c in enumerate(r.clusters, 1) if p.a in c)] for p in r.pairs])]


def summary_text(r: Report) -> str:
    """The short text summary ``cnncourse report`` prints."""
    s = r.distribution.summary
    lines = [f"{r.data.assignment}: " + ", ".join(f"{n} {k}" for k, n in r.statuses.items() if n)]
    if s["n"]:
        lines.append(f"score of {r.distribution.max_score:g}: mean {s['mean']:.2f}, median {s['median']:g}, "
                     f"quartiles {s['q1']:g}-{s['q3']:g}")
    for t in r.tests:
        if t.failed:
            why = ", ".join(f"{n / t.failed:.0%} {m}" for m, n in t.mistakes)
            lines.append(f"{t.label}: {t.failed / t.recorded:.0%} fail; of those {why}")
    hard = [q for q in r.questions if q.difficulty == q.difficulty and q.difficulty < 0.5]
    if hard:
        lines.append("hardest questions: " + ", ".join(f"{q.label} ({q.difficulty:.2f})" for q in
                                                       sorted(hard, key=lambda q: q.difficulty)[:5]))
    lines.append(f"similar submissions (review by hand; threshold {r.settings.threshold:.2f}): "
                 + ("; ".join(", ".join(c) for c in r.clusters) if r.clusters else "none"))
    return "\n".join(lines)
