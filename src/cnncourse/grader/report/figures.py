"""The report's figures as PNG bytes (matplotlib's Agg backend; embedded in the page as base64)."""
from __future__ import annotations

import io

import numpy as np

from cnncourse.grader.report.stats import UNRECOGNISED, Distribution, TestStats


PASSED = "#55a868"
MISTAKE_COLOURS = ("#dd8452", "#4c72b0", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#ccb974", "#64b5cd")


def mistake_colours(tests: list[TestStats]) -> dict[str, str]:
    """One colour per recognised mistake (the chart's and the table's bars agree)."""
    labels = sorted({m for t in tests for m, _ in t.mistakes} - {UNRECOGNISED})
    return dict(zip(labels, MISTAKE_COLOURS * (len(labels) // len(MISTAKE_COLOURS) + 1)))


def _figure(width: float, height: float):
    """A bare Agg figure and its axes (no pyplot: no backend set-up, no global figure list)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def histogram(dist: Distribution) -> bytes:
    """Histogram of the graded students' total scores, with the mean and the quartiles marked."""
    fig, ax = _figure(5.4, 2.8)
    top = max(dist.max_score, float(dist.scores.max()) if len(dist.scores) else 0.0, 1.0)
    # one bar per whole point up to 40 points (centred on it), else 20 equal bins
    bins = np.arange(0, np.ceil(top) + 2) - 0.5 if top <= 40 else np.linspace(0, top, 21)
    ax.hist(dist.scores, bins=bins, color="#4c72b0", edgecolor="white")
    s = dist.summary
    if s["n"]:
        ax.axvline(s["mean"], color="#c44e52", lw=2, label=f"mean {s['mean']:.1f}")
        for q, style in ((s["q1"], ":"), (s["median"], "--"), (s["q3"], ":")):
            ax.axvline(q, color="black", lw=1, ls=style)
        ax.legend(loc="upper left", frameon=False)
    ax.set_xlabel(f"score (of {dist.max_score:g}); dashed: median, dotted: quartiles")
    ax.set_ylabel("students")
    ax.set_title(f"Score distribution ({s['n']} graded)")
    return _png(fig)


def test_bars(tests: list[TestStats]) -> bytes:
    """One horizontal bar per test: passed, then each recognised mistake, then unrecognised failures."""
    from matplotlib.patches import Rectangle

    colours = mistake_colours(tests)
    labels = list(colours)
    fig, ax = _figure(8.0, 0.45 * len(tests) + 1.6)
    for i, t in enumerate(tests):
        left = t.recorded - t.failed
        ax.barh(i, left, color=PASSED)
        for name, n in sorted(t.mistakes, key=lambda kv: kv[0] == UNRECOGNISED):
            ax.barh(i, n, left=left, color="#bbbbbb" if name == UNRECOGNISED else colours[name])
            left += n
    ax.set_yticks(range(len(tests)), [t.label for t in tests])
    ax.invert_yaxis()
    ax.set_xlabel("students (green: passed; coloured: recognised mistake; grey: unrecognised)")
    ax.set_title("Tests: passes and the mistakes behind the failures")
    handles = [Rectangle((0, 0), 1, 1, color=colours[m]) for m in labels]
    if handles:
        ax.legend(handles, [m[:60] for m in labels], loc="upper center", bbox_to_anchor=(0.5, -0.25),
                  fontsize=7, frameon=False, ncol=1)
    return _png(fig)
