"""The instructor's reference layers of ``conv_layers``, executed from the source notebook (no second copy).

Instructor only (next to ``oracle.py``; never released). Benchmarks and tests that need the reference call
:func:`load`; tests that need a deliberately broken variant pass ``edits``, a text replacement in one solution
cell, so every variant follows the notebook as it changes.
"""
from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().with_name("conv_layers.ipynb")


def _cells(notebook: Path) -> list[dict]:
    return [c for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def load(edits: dict[str, tuple[str, str]] | None = None, notebook: Path = NOTEBOOK) -> dict:
    """The namespace of the notebook's solution cells (and the given helper cells they use), executed in order.

    ``edits``: ``{grade_id: (old, new)}`` replaces ``old`` (which must occur exactly once) by ``new`` in that
    cell first, e.g. ``{"conv_backward_naive": ("+=", "=")}`` for the classic overwrite mistake.
    """
    edits = dict(edits or {})
    namespace: dict = {"__name__": "conv_layers_reference"}
    exec("import numpy as np", namespace)
    for cell in _cells(notebook):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if not (meta.get("solution") or grade_id.startswith("given_")):
            continue
        source = "".join(cell["source"])
        if grade_id in edits:
            old, new = edits.pop(grade_id)
            if source.count(old) != 1:
                raise ValueError(f"cell {grade_id} contains {old!r} {source.count(old)} times, not once")
            source = source.replace(old, new)
        exec(compile(source, f"<{notebook.name}:{grade_id}>", "exec"), namespace)
    if edits:
        raise ValueError(f"no solution cells named {sorted(edits)} in {notebook}")
    return namespace
