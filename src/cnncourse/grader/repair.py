"""Submission repair before nbgrader runs: the graded notebook is rebuilt in the SOURCE notebook's order.

* unreadable notebooks are set aside (``*.invalid``: status ``invalid notebook``, 0 points);
* a renamed notebook is graded under its expected name (matched by its nbgrader cell ids);
* a graded cell the student duplicated keeps its first copy; later copies lose their nbgrader metadata;
* the notebook is rebuilt in the source's cell order: locked cells (setup, tests) come from the source at
  their source positions (deleted ones come back), each answer cell takes the student's first copy (a
  deleted answer becomes an unanswered stub), and the student's own extra cells follow the graded cell they
  followed; none of the student's code runs before the setup cell.

``repair_submission`` returns what it did; nbgrader then overwrites locked cells from the gradebook anyway.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

STUB = {"code": "# (answer cell missing from the submission)\nraise NotImplementedError()",
        "markdown": "(answer cell missing from the submission)"}


@dataclass
class RepairNotes:
    """What ``repair_submission`` changed, per notebook file name."""

    invalid: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    restored: dict[str, list[str]] = field(default_factory=dict)
    duplicated: dict[str, list[str]] = field(default_factory=dict)


def grade_id(cell) -> str | None:
    """The nbgrader ``grade_id`` of a cell, or None."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def is_protected(cell) -> bool:
    """Locked cells and test cells: the source's copy is the one graded."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade_id")) and bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def _fresh(cell):
    new = nbformat.from_dict(copy.deepcopy(dict(cell)))
    if new.cell_type == "code":
        new.outputs, new.execution_count = [], None
    return new


def rebuild(source, student) -> tuple[object, list[str], list[str]]:
    """``student`` rebuilt in ``source``'s order; returns (notebook, restored grade_ids, duplicated grade_ids)."""
    known = {grade_id(c) for c in source.cells if grade_id(c)}
    first: dict[str, object] = {}
    duplicated: list[str] = []
    extras: dict[str | None, list] = {}
    anchor = None
    for cell in student.cells:
        gid = grade_id(cell)
        if gid and (gid in first or gid not in known):
            if gid in first:
                duplicated.append(gid)
            cell.metadata.pop("nbgrader", None)
            gid = None
        if gid:
            first[gid] = cell
            anchor = gid
        else:
            extras.setdefault(anchor, []).append(cell)
    position = {grade_id(c): i for i, c in enumerate(source.cells) if grade_id(c)}
    setup = next((i for i, c in enumerate(source.cells) if c.cell_type == "code" and is_protected(c)), -1)
    early = [c for a, cells in extras.items() if a is None or position[a] <= setup for c in cells]
    cells = [c for c in early if c.cell_type != "code"]
    restored = []
    if setup < 0:
        cells += [c for c in early if c.cell_type == "code"]
    for i, scell in enumerate(source.cells):
        gid = grade_id(scell)
        if gid is None:
            continue
        if is_protected(scell):
            cells.append(_fresh(scell))
            if gid not in first:
                restored.append(gid)
        elif gid in first:
            cells.append(first[gid])
        else:
            stub = _fresh(scell)
            stub.source = STUB.get(stub.cell_type, STUB["markdown"])
            cells.append(stub)
            restored.append(gid)
        if i == setup:
            cells += [c for c in early if c.cell_type == "code"]
        if position[gid] > setup:
            cells += extras.get(gid, [])
    seen: set[str] = set()
    for cell in cells:  # nbformat 4.5 cell ids must stay unique
        if cell.get("id") in seen or "id" not in cell:
            cell["id"] = uuid.uuid4().hex[:8]
        seen.add(cell["id"])
    out = copy.deepcopy(student)
    out.cells = cells
    return out, restored, duplicated


def _ids(nb) -> set[str]:
    return {g for g in map(grade_id, nb.cells) if g}


def repair_submission(source_dir: Path, submitted_dir: Path) -> RepairNotes:
    """Prepare ``submitted_dir`` (the worker's copy) for nbgrader as described in the module docstring."""
    notes = RepairNotes()
    expected = {p.name: nbformat.read(p, as_version=4) for p in sorted(source_dir.glob("*.ipynb"))}
    readable: dict[str, object] = {}
    for path in sorted(submitted_dir.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
            if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) for c in nb.cells):
                raise ValueError("no cells")
            readable[path.name] = nb
        except Exception as exc:  # corrupted JSON, not a notebook
            notes.invalid.append(f"{path.name} ({type(exc).__name__}: {str(exc)[:120]})")
            path.rename(path.with_name(path.name + ".invalid"))
    for name, src in expected.items():
        if name in readable or any(n.startswith(name + " ") for n in notes.invalid):
            continue
        candidates = [(len(_ids(src) & _ids(nb)), other) for other, nb in readable.items() if other not in expected]
        candidates = [c for c in candidates if c[0] > 0]
        if candidates:
            other = max(candidates)[1]
            (submitted_dir / other).rename(submitted_dir / name)
            readable[name] = readable.pop(other)
            notes.renamed[other] = name
        else:
            notes.missing.append(name)
    for name, src in expected.items():
        if name not in readable:
            continue
        try:
            nb, restored, duplicated = rebuild(src, readable[name])
        except Exception as exc:  # cells of a shape nbformat accepts but we cannot place
            notes.invalid.append(f"{name} ({type(exc).__name__}: {str(exc)[:120]})")
            (submitted_dir / name).rename(submitted_dir / (name + ".invalid"))
            continue
        if restored:
            notes.restored[name] = restored
        if duplicated:
            notes.duplicated[name] = duplicated
        nbformat.write(nb, submitted_dir / name)
    return notes
