"""The report as one self-contained HTML page: figures as base64 PNG, CSS inline, no JavaScript."""
from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

from cnncourse.grader.report.figures import mistake_colours
from cnncourse.grader.report.stats import UNRECOGNISED, TestStats

if TYPE_CHECKING:
    from cnncourse.grader.report import Report

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1100px;
padding:0 1.5em;color:#222}.row{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}
.row .note{max-width:440px}.row h3{margin-top:.3em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.8em;background:#c44e52;vertical-align:middle;margin-right:.4em}
.bar.u{background:#bbb}.note{color:#555;font-size:.92em;max-width:900px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.6em}pre{background:#f7f7f7;padding:.5em;overflow-x:auto;
font-size:.8em;margin:0}.warn{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None or x != x else format(x, fmt)


def _mistakes(t: TestStats, colours: dict[str, str]) -> str:
    if not t.failed:
        return ""
    parts = []
    for name, n in t.mistakes:
        share = n / t.failed
        colour = f"background:{colours[name]};" if name in colours else ""
        cls = "bar u" if name == UNRECOGNISED else "bar"
        parts.append(f'<div><span class="{cls}" style="{colour}width:{share * 120:.0f}px"></span>'
                     f"{share:.0%} ({n}) {escape(name)}</div>")
    return "".join(parts)


def render(r: Report) -> str:
    """The page of a :class:`cnncourse.grader.report.Report`: scores and statuses, the tests with the
    mistakes behind their failures, the questions' item analysis, the slowest submissions, similar code."""
    s, d = r.distribution.summary, r.distribution
    colours = mistake_colours(r.tests)
    stats_table = ""
    if s["n"]:
        stats_table = _table(["graded", "mean", "median", "Q1", "Q3", "min", "max", "of"],
                             [[str(s["n"]), _f(s["mean"]), _f(s["median"]), _f(s["q1"]), _f(s["q3"]),
                               _f(s["min"], "g"), _f(s["max"], "g"), f"{d.max_score:g}"]], set(range(8)))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Class report: "
             f"{escape(r.data.assignment)}</title><style>{CSS}</style></head><body>",
             f"<h1>Class report: {escape(r.data.assignment)}</h1>",
             f"<p>{len(r.data.submissions)} students on the roster, {s['n']} graded. Made from the gradebook and "
             "the grading journal; no student code was run.</p>",
             "<div class='row'><div>", _img(r.figures["histogram"], "histogram of total scores"), "</div><div>",
             "<h3>Scores</h3>", stats_table, "<h3>Status</h3>",
             _table(list(r.statuses), [[str(n) for n in r.statuses.values()]], set(range(len(r.statuses)))),
             "<p class='note'>late: submitted after the due date (plus extension), also counted by status. "
             "missing: on the roster without a submission, or no notebook submitted.</p></div></div>"]
    parts += ["<h2>Tests and the mistakes behind the failures</h2>",
              "<p class='note'>Per test: students with a recorded result, pass rate, and for the failing "
              "students the recognised mistake (the hint the test gave; <i>unrecognised</i> when no hint "
              "fired). Re-teach the largest bars.</p>",
              _table(["test", "students", "pass rate", "failed", "mistakes of the failing students"],
                     [[escape(t.label), str(t.recorded), _f(t.pass_rate, ".0%"), str(t.failed),
                       _mistakes(t, colours)] for t in r.tests], {1, 2, 3}),
              _img(r.figures["tests"], "bar chart of passes and mistakes per test")]
    parts += ["<h2>Questions</h2>",
              "<p class='note'>Difficulty: mean points / max points (1.0: everybody got full marks). "
              "Discrimination: correlation of the question's points with the rest of the score (near 0 or "
              "negative: the question does not separate strong from weak submissions; check its tests).</p>",
              _table(["question", "max", "mean", "difficulty", "discrimination"],
                     [[escape(q.label), f"{q.max_score:g}", _f(q.mean), _f(q.difficulty),
                       _f(q.discrimination)] for q in r.questions], {1, 2, 3, 4})]
    parts += ["<h2>Slowest submissions</h2>",
              _table(["student", "seconds", "status", "details"],
                     [[escape(x.student), f"{x.seconds:.1f}", escape(x.status), escape(x.message[:200])]
                      for x in r.slowest], {1})]
    parts += _similarity(r)
    parts.append("</body></html>")
    return "\n".join(parts)


def _similarity(r: Report) -> list[str]:
    st = r.settings
    out = ["<h2>Similar submissions</h2>",
           f"<p class='warn'>A signal to review by hand, never an accusation. Graded functions are compared after "
           f"normalising the code (comments, docstrings and names dropped, starter code ignored); code shared by "
           f"more than max({st.common_min}, {st.common_share:.0%} of the class) submissions is ignored. A pair is "
           f"listed when its similarity (share of uncommon code in common) is at least {st.threshold:.2f} and "
           f"it shares at least {st.min_shared} code fragments. Identical code can have innocent causes; talk to "
           f"the students before drawing any conclusion. Change the threshold with "
           f"<code>cnncourse report --similarity</code>.</p>"]
    if not r.pairs:
        return out + [f"<p>No pairs at or above {st.threshold:.2f} ({r.compared} submissions compared).</p>"]
    out.append("<p>Clusters: " + "; ".join(escape(", ".join(c)) for c in r.clusters) + "</p>")
    for p in r.pairs:
        out.append(f"<h3>{escape(p.a)} and {escape(p.b)}: similarity {p.score:.2f} ({p.shared} fragments)</h3>")
        if not p.functions:
            out.append("<p>(code not shown: more pairs than the page shows; see similar_pairs.csv)</p>")
        for name, (a, b) in p.functions.items():
            out.append(f"<p>cell/function <code>{escape(name)}</code></p><div class='pair'>"
                       f"<div>{escape(p.a)}<pre>{escape(a)}</pre></div><div>{escape(p.b)}<pre>{escape(b)}</pre>"
                       "</div></div>")
    return out
