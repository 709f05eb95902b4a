"""What grading one submission produced: the ``Result`` the worker returns, the summary table and the
status rules (one place decides which status a submission gets)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("graded", "timed out", "crashed", "invalid notebook", "missing notebook")


@dataclass
class Result:
    """The outcome of grading one submission (summary table, journal entry, gradebook merge).
    ``tests`` holds ``resources["cnncourse"]["tests"]`` per notebook (per-test results for the class report)."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    message: str = ""
    timestamp: str | None = None
    notebooks: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)
    merged: bool = False


def status_of(events: list[dict], invalid: list[str], missing: list[str], failure: str = "") -> tuple[str, list[str]]:
    """``(status, messages)``: a grader failure or a crashed kernel first, then time limits, then notebooks
    that could not be graded; otherwise ``graded``."""
    by_kind = {kind: [e["message"] for e in events if e["kind"] == kind] for kind in ("crashed", "timed out")}
    if failure:
        return "crashed", [failure]
    if by_kind["crashed"]:
        return "crashed", ["; ".join(by_kind["crashed"])]
    if by_kind["timed out"]:
        return "timed out", ["; ".join(by_kind["timed out"])]
    if invalid:
        return "invalid notebook", ["not a readable notebook: " + ", ".join(invalid)]
    if missing:
        return "missing notebook", ["not submitted: " + ", ".join(missing)]
    return "graded", []


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}min"


def summary_table(results: dict[str, Result]) -> str:
    """One line per student (score, time, status, details) and the count per status."""
    rows = [("student", "score", "time", "status", "details")]
    for s in sorted(results):
        r = results[s]
        rows.append((s, f"{r.score:g}/{r.max_score:g}", _fmt_seconds(r.seconds) if r.seconds else "-", r.status,
                     (r.message[:160] + "…") if len(r.message) > 160 else r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * min(120, len(lines[0])))
    counts = {st: sum(r.status == st for r in results.values()) for st in (*STATUSES, "skipped")}
    lines.append(", ".join(f"{n} {st}" for st, n in counts.items() if n))
    return "\n".join(line.rstrip() for line in lines)
