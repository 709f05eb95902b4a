"""The course on disk: finding its root and releasing assignments with nbgrader (validating and grading
notebooks is :mod:`cnncourse.grader`).

``release`` runs ``nbgrader generate_assignment`` on ``solutions/<assignment>/`` inside a temporary copy
of the course, so the instructor's gradebook is never touched, and writes the student version to
``assignments/<assignment>/``. ``release_check`` does the same and reports stale files instead of writing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

CONFIG_FILE = "nbgrader_config.py"
SOURCE_DIR = "solutions"
RELEASE_DIR = "assignments"


class CourseError(RuntimeError):
    """A problem with the course layout or an nbgrader step, with a message that says how to fix it."""


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The course root: ``$CNNCOURSE_ROOT``, else the first folder at or above ``start`` (default: the
    current directory) holding ``nbgrader_config.py`` and ``solutions/``, else the checkout this package
    was installed from (editable install)."""
    if os.environ.get("CNNCOURSE_ROOT"):
        root = Path(os.environ["CNNCOURSE_ROOT"]).resolve()
        if not (root / CONFIG_FILE).is_file():
            raise CourseError(f"CNNCOURSE_ROOT={root} has no {CONFIG_FILE}; point it at the course folder")
        return root
    here = Path(start or Path.cwd()).resolve()
    candidates = [here, *here.parents, Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / CONFIG_FILE).is_file() and (folder / SOURCE_DIR).is_dir():
            return folder
    raise CourseError(f"no course found at or above {here}: run this inside the course folder (the one with "
                      f"{CONFIG_FILE}) or set CNNCOURSE_ROOT")


def assignment_names(root: Path) -> list[str]:
    """Assignments with a source folder in ``solutions/``, sorted."""
    src = root / SOURCE_DIR
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _check_assignment(root: Path, assignment: str) -> None:
    known = assignment_names(root)
    if assignment not in known:
        raise CourseError(f"unknown assignment {assignment!r}: solutions/ has {', '.join(known) or 'nothing'}")


def canonical(nb_path: Path) -> str:
    """Notebook text in the one format the repository stores (nbformat 4, sorted keys, no outputs)."""
    nb = nbformat.read(nb_path, as_version=4)
    return nbformat.writes(nb) + "\n"


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses: this interpreter's bin first on PATH (nbgrader runs
    ``alembic`` by name) and warnings off (a warning on stderr scores a test cell 0)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def generate(root: Path, assignment: str, out_dir: Path) -> Path:
    """Run ``nbgrader generate_assignment`` for ``assignment`` in a scratch copy of the course and return
    the folder of generated student files (inside ``out_dir``)."""
    _check_assignment(root, assignment)
    scratch = out_dir / "course"
    scratch.mkdir(parents=True)
    shutil.copy2(root / CONFIG_FILE, scratch / CONFIG_FILE)
    shutil.copytree(root / SOURCE_DIR / assignment, scratch / SOURCE_DIR / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    env = nbgrader_env()
    env["CNNCOURSE_DB"] = f"sqlite:///{out_dir / 'gradebook.db'}"
    env.pop("CNNCOURSE_ROOT", None)
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--log-level=ERROR"]
    proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
    released = scratch / RELEASE_DIR / assignment
    if proc.returncode != 0 or not released.is_dir():
        raise CourseError(f"nbgrader generate_assignment {assignment} failed (exit {proc.returncode}):\n"
                          f"{proc.stdout}{proc.stderr}")
    for nb_path in released.rglob("*.ipynb"):
        nb_path.write_text(canonical(nb_path))
    return released


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}


def release(root: Path, assignment: str) -> list[str]:
    """Generate the student version of ``assignment`` into ``assignments/<assignment>/`` (replacing it).
    Returns the released file names."""
    with tempfile.TemporaryDirectory(prefix="cnncourse-release-") as tmp:
        released = generate(root, assignment, Path(tmp))
        target = root / RELEASE_DIR / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(released, target)
    return sorted(_files(target))


@dataclass
class Stale:
    """A released file that differs from what ``release`` would write now."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def release_check(root: Path, assignment: str) -> list[Stale]:
    """Compare ``assignments/<assignment>/`` with a fresh release; an empty list means it is in sync."""
    with tempfile.TemporaryDirectory(prefix="cnncourse-check-") as tmp:
        fresh = _files(generate(root, assignment, Path(tmp)))
        current = _files(root / RELEASE_DIR / assignment)
        stale = [Stale(f"{RELEASE_DIR}/{assignment}/{name}", "missing") for name in fresh if name not in current]
        stale += [Stale(f"{RELEASE_DIR}/{assignment}/{name}", "not produced by the release (remove it)")
                  for name in current if name not in fresh]
        for name in sorted(set(fresh) & set(current)):
            if fresh[name].read_bytes() != current[name].read_bytes():
                stale.append(Stale(f"{RELEASE_DIR}/{assignment}/{name}", "differs from solutions/ (re-release)"))
    return stale
