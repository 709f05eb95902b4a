"""``cnncourse validate NOTEBOOK``: run a notebook through the course's configured autograde preprocessors
(hidden-test placement, ``SandboxedExecute`` without the sandbox, answer checking) and report every graded
cell with nbgrader's own grading rule. Preprocessors that write a gradebook are left out."""
from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cnncourse import course

NEEDS_GRADEBOOK = ("SaveAutoGrades", "AssignLatePenalties", "SaveCells", "GetGrades")


@dataclass
class CellResult:
    """Outcome of one graded cell of a validated notebook."""

    grade_id: str
    kind: str  # "test" or "solution"
    points: float
    max_points: float
    passed: bool
    message: str


def _error_message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return ""


def _preprocessors(cfg) -> list:
    from nbgrader.converters import Autograde
    from traitlets.utils.importstring import import_item

    listed = cfg.Autograde.get("autograde_preprocessors", None) if "Autograde" in cfg else None
    classes = [import_item(p) if isinstance(p, str) else p for p in (listed or Autograde.autograde_preprocessors
                                                                     .default_value)]
    classes = [c for c in classes if c.__name__ not in NEEDS_GRADEBOOK]
    from nbgrader.preprocessors import Execute

    from cnncourse.grader.execute import SandboxedExecute
    return [SandboxedExecute if c is Execute else c for c in classes]


def validate(nb_path: Path, timeout: int = 120) -> list[CellResult]:
    """Execute a notebook top to bottom (errors do not stop it) and return the result of every graded cell."""
    from nbgrader import utils

    from cnncourse.grader.layout import Course

    nb_path = Path(nb_path)
    if not nb_path.is_file():
        raise course.CourseError(f"no notebook at {nb_path}")
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception as exc:  # corrupted JSON, wrong format
        raise course.CourseError(f"{nb_path} is not a valid notebook ({exc}); restore it from the released copy") \
            from exc
    folder = nb_path.parent.resolve()
    try:
        crs = Course.load(course.find_root(folder))
        root = str(crs.root)
    except course.CourseError:  # a notebook outside any course: nbgrader's defaults
        crs, root = None, ""
    overrides = {"SandboxedExecute": {"timeout": timeout, "timeout_notebook": 100 * timeout},
                 "SandboxedKernelManager": {"sandbox": False, "course_root": root}}
    if crs is not None:
        cfg = crs.nbgrader_config(**overrides)
    else:
        from traitlets.config import Config
        cfg = Config(overrides)
    resources = {"metadata": {"path": str(folder)}, "unique_key": nb_path.stem,
                 "nbgrader": {"assignment": folder.name, "notebook": nb_path.stem, "student": getpass.getuser()}}
    with utils.setenv(NBGRADER_EXECUTION="validate"):
        for pp in _preprocessors(cfg):
            nb, resources = pp(config=cfg)(nb, resources)  # __call__ skips disabled ones
    results = []
    for cell in nb.cells:
        if not utils.is_grade(cell):
            continue
        points, max_points = utils.determine_grade(cell, None)
        if points is None:  # manually graded answer
            continue
        kind = "test" if cell.cell_type == "code" and not utils.is_solution(cell) else "solution"
        message = _error_message(cell)
        if not message and points < max_points:
            message = "wrote to stderr (a warning?): nbgrader scores such a cell 0"
        results.append(CellResult(cell.metadata["nbgrader"]["grade_id"], kind, points, max_points,
                                  points >= max_points, message))
    return results
