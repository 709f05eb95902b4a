"""The landing page of the course site: what each lecture and assignment is, how long it takes, and which
lectures each assignment builds on (read from the assignment's own introduction)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

# Used only when an assignment's introduction names no lecture (the course design's map).
DESIGN_MAP = {"conv_arithmetic": [2, 3, 5], "conv_layers": [2, 3, 4], "cnn_architectures": [6, 7, 8],
              "transfer_learning": [9]}
WORDS_PER_MINUTE = 120  # technical prose with code and figures reads slowly
LECTURE_REF = re.compile(r"\b[Ll]ectures?\s+(\d{1,2}(?:\s*(?:,|and|&|–|-|to)\s*\d{1,2})*)")


def title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The notebook's first heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _words(nb: nbformat.NotebookNode) -> int:
    return sum(len(cell.source.split()) for cell in nb.cells)


def time_estimate(nb: nbformat.NotebookNode, extra_minutes: int = 0) -> str:
    """The time the notebook states at its top (an italic line mentioning minutes or hours), else an
    estimate from its length (said so)."""
    for cell in nb.cells[:3]:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            stated = re.fullmatch(r"\s*\*([^*]+)\*\s*", line)
            if stated and re.search(r"\b(min|minutes?|hours?|h)\b", stated.group(1)):
                return re.sub(r"^Time:\s*", "", stated.group(1).strip())
    minutes = _words(nb) / WORDS_PER_MINUTE + extra_minutes
    minutes = max(5, int(round(minutes / 5.0)) * 5)
    text = f"about {minutes} min" if minutes < 90 else f"about {minutes / 60:.1f} h"
    return f"{text} (estimated from its length)"


def _numbers(text: str) -> list[int]:
    found: list[int] = []
    for match in LECTURE_REF.finditer(text):
        group = match.group(1)
        for lo, hi in re.findall(r"(\d{1,2})\s*(?:–|-|to)\s*(\d{1,2})", group):
            found += range(int(lo), int(hi) + 1)
        found += [int(n) for n in re.findall(r"\d{1,2}", group)]
    return sorted(set(found))


def lectures_for(assignment: str, nb: nbformat.NotebookNode, lecture_numbers: set[int]) -> list[int]:
    """The lectures an assignment's introduction names (its first markdown cells), else the design's map."""
    intro = "\n".join(c.source for c in nb.cells[:4] if c.cell_type == "markdown")
    named = [n for n in _numbers(intro) if n in lecture_numbers]
    return named or [n for n in DESIGN_MAP.get(assignment, []) if n in lecture_numbers]


def lecture_number(path: Path) -> int | None:
    match = re.match(r"(\d+)_", path.name)
    return int(match.group(1)) if match else None


def index_page(lectures: list[tuple[Path, nbformat.NotebookNode]],
               assignments: list[tuple[str, nbformat.NotebookNode]]) -> str:
    """The MyST text of index.md: lecture and assignment tables, then the table of contents."""
    numbers = {lecture_number(p): p for p, _ in lectures if lecture_number(p) is not None}
    lines = [
        "# Convolutional neural networks, taught in Jupyter", "",
        "Lectures to read in order, each executed for this site, and the assignments that practise them. "
        "The lecture pages were run in **SMOKE mode** (small data, few epochs): their figures and numbers are "
        "real but come from a quick run. Run the notebooks yourself for the full results: clone the "
        "repository and run `make lab`.", "",
        "## Lectures", "",
        "| lecture | time | practised in |", "|---|---|---|",
    ]
    used_by: dict[int, list[str]] = {}
    for name, nb in assignments:
        for n in lectures_for(name, nb, set(numbers)):
            used_by.setdefault(n, []).append(name)
    for path, nb in lectures:
        n = lecture_number(path)
        practised = ", ".join(f"[{a}](assignments/{a}.ipynb)" for a in used_by.get(n, [])) or "—"
        lines.append(f"| [{title(nb, path.stem)}](lectures/{path.name}) | {time_estimate(nb)} | {practised} |")
    lines += ["", "## Assignments", "",
              "Read-only copies of the notebooks students receive (no solutions, no hidden tests). To work on "
              "one, open `assignments/<name>/<name>.ipynb` in JupyterLab (`make lab`).", "",
              "| assignment | builds on lectures | time |", "|---|---|---|"]
    for name, nb in assignments:
        refs = lectures_for(name, nb, set(numbers))
        solution_cells = sum(bool(c.metadata.get("nbgrader", {}).get("solution")) for c in nb.cells)
        builds_on = ", ".join(f"[{n:02d}](lectures/{numbers[n].name})" for n in refs) or "—"
        lines.append(f"| [{title(nb, name)}](assignments/{name}.ipynb) | {builds_on} | "
                     f"{time_estimate(nb, extra_minutes=15 * solution_cells)} |")
    lines += ["", "```{toctree}", ":caption: Lectures", ":maxdepth: 1", "",
              *[f"lectures/{p.stem}" for p, _ in lectures], "```", "",
              "```{toctree}", ":caption: Assignments", ":maxdepth: 1", "",
              *[f"assignments/{name}" for name, _ in assignments], "```", ""]
    return "\n".join(lines)
