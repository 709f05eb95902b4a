"""The numbers of the class report: score distribution, item analysis per question (difficulty and
discrimination), pass rate and recognised mistakes per test, status counts and the slowest submissions.

Conventions (stated in the report too):
* the score distribution, the item analysis and the test table use the students whose submission was graded
  (status ``graded``, on time or late); crashed, timed-out, invalid and missing submissions are only counted;
* difficulty = mean points / max points (share of full marks: 1.0 = everybody got it);
* discrimination = Pearson correlation of a question's points with the rest of the score (total minus that
  question), over the graded students; empty when either is constant;
* a failing test's mistake is its recorded hint grouped by :func:`mistake_label` (first sentence, numbers as
  ``#``), ``unrecognised`` when the failure message named no likely cause.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cnncourse.grader.report.data import MISSING, ClassData, Submission

UNRECOGNISED = "unrecognised"
STATUS_LABELS = {"graded": "graded", "timed out": "timed out", "crashed": "crashed", "invalid notebook": "invalid",
                 "missing notebook": "missing", MISSING: "missing"}
STATUS_ORDER = ("graded", "timed out", "crashed", "invalid", "missing", "late")
_SENTENCE = re.compile(r";\s|\.\s")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def mistake_label(hint: str | None) -> str:
    """A stable label for a hint: its first sentence (up to the first ``; `` or ``. ``), numbers replaced by
    ``#``, whitespace collapsed, at most 120 characters; so ``your dx is 0.25 times the right one: ...`` and
    ``your dx is 4 times the right one: ...`` count as one mistake, while two hints that only start alike
    ("the gradient lands in the wrong place: the row and column are swapped" / "...: window (i, j)'s maximum
    ...") stay apart. No hint: ``unrecognised``."""
    if not hint or not hint.strip():
        return UNRECOGNISED
    first = _SENTENCE.split(hint.strip(), maxsplit=1)[0].rstrip(" .;")
    label = " ".join(_NUMBER.sub("#", first).split())
    return label if len(label) <= 120 else label[:119].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class Distribution:
    """Total scores of the graded students."""

    scores: np.ndarray
    max_score: float

    @property
    def summary(self) -> dict[str, float]:
        if not len(self.scores):
            return {"n": 0}
        q1, median, q3 = np.percentile(self.scores, [25, 50, 75])
        return {"n": len(self.scores), "mean": float(self.scores.mean()), "median": float(median),
                "q1": float(q1), "q3": float(q3), "min": float(self.scores.min()), "max": float(self.scores.max())}


@dataclass(frozen=True)
class QuestionStats:
    label: str
    max_score: float
    mean: float
    difficulty: float
    discrimination: float | None


@dataclass(frozen=True)
class TestStats:
    """One test: how many graded students have a recorded result, how many failed, and the failures'
    mistakes as ``[(label, count)]``, most frequent first (ties by label)."""

    label: str
    recorded: int
    failed: int
    mistakes: list[tuple[str, int]]

    @property
    def pass_rate(self) -> float:
        return (self.recorded - self.failed) / self.recorded if self.recorded else float("nan")


def graded(data: ClassData) -> list[Submission]:
    return [s for s in data.submissions.values() if s.status == "graded"]


def distribution(data: ClassData) -> Distribution:
    return Distribution(np.array([s.score for s in graded(data)], dtype=float), data.max_score)


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def questions(data: ClassData) -> list[QuestionStats]:
    """Mean points, difficulty and discrimination of each question over the graded students."""
    subs = graded(data)
    points = np.array([[s.points.get(q.label, 0.0) for q in data.questions] for s in subs], dtype=float)
    points = points.reshape(len(subs), len(data.questions))
    totals = points.sum(axis=1)
    out = []
    for j, q in enumerate(data.questions):
        col = points[:, j]
        mean = float(col.mean()) if len(col) else float("nan")
        out.append(QuestionStats(q.label, q.max_score, mean, mean / q.max_score if q.max_score else float("nan"),
                                 _correlation(col, totals - col)))
    return out


def tests(data: ClassData) -> list[TestStats]:
    """Pass rate and mistakes per test, tests in question order (then any other recorded test by name)."""
    subs = graded(data)
    names = [q.label for q in data.questions]
    names += sorted({t for s in subs for t in s.tests} - set(names))
    out = []
    for name in names:
        results = [s.tests[name] for s in subs if name in s.tests]
        if not results:
            continue
        mistakes = Counter(mistake_label(r.get("hint")) for r in results if not r.get("passed"))
        out.append(TestStats(name, len(results), sum(mistakes.values()),
                             sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))))
    return out


def status_counts(data: ClassData) -> dict[str, int]:
    """Students per status (``late``: graded submissions past the due date, counted also as graded)."""
    counts = Counter(STATUS_LABELS.get(s.status, s.status) for s in data.submissions.values())
    counts["late"] = sum(s.seconds_late > 0 for s in data.submissions.values() if s.status != MISSING)
    return {k: counts.get(k, 0) for k in (*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER)))}


def slowest(data: ClassData, n: int = 10) -> list[Submission]:
    """The ``n`` submissions that took longest to grade (ties by student id)."""
    timed = [s for s in data.submissions.values() if s.seconds > 0]
    return sorted(timed, key=lambda s: (-s.seconds, s.student))[:n]


def mistakes_of(data: ClassData, test: str) -> dict[str, str]:
    """``{student: mistake label}`` of the graded students who failed ``test`` (for the CSV files)."""
    return {s.student: mistake_label(s.tests[test].get("hint")) for s in graded(data)
            if test in s.tests and not s.tests[test].get("passed")}
