"""The instructor's reference layers of conv_layers, executed from the source notebook (instructor only: never
released, like ``oracle.py``; ``oracle_*.py`` is in nbgrader_config.py's ``CourseDirectory.ignore``).

Benchmarks and tests that need the reference call :func:`reference`; tests that need a deliberately broken variant
pass ``edits``, a text replacement in one solution cell, so every variant follows the notebook as it changes.
There is no second copy of the reference anywhere.
"""
from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().with_name("conv_layers.ipynb")


def reference(edits: dict[str, tuple[str, str]] | None = None, notebook: Path = NOTEBOOK) -> dict:
    """The namespace of the notebook's solution cells and given helper cells (grade ids ``given_*``), executed
    in order. ``edits``: ``{grade_id: (old, new)}`` replaces ``old`` (exactly once) by ``new`` in that cell
    first, e.g. ``{"conv_backward_naive": ("+=", "=")}``: a deliberately broken variant for tests."""
    edits = dict(edits or {})
    namespace: dict = {"__name__": "conv_layers_reference"}
    exec("import numpy as np", namespace)
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if cell["cell_type"] != "code" or not (meta.get("solution") or grade_id.startswith("given_")):
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
