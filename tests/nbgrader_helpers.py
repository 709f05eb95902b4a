"""Run real nbgrader autograding on a temporary copy of the course (shared by the tests)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cnncourse import course


def make_course(course_root: Path, assignment: str, workdir: Path) -> Path:
    """A scratch course in ``workdir`` holding the config and one assignment's source, released there."""
    root = workdir / "course"
    (root / course.SOURCE_DIR).mkdir(parents=True)
    shutil.copy2(course_root / course.CONFIG_FILE, root / course.CONFIG_FILE)
    shutil.copytree(course_root / course.SOURCE_DIR / assignment, root / course.SOURCE_DIR / assignment)
    run_nbgrader(root, "generate_assignment", assignment, "--force")
    return root


def run_nbgrader(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in the scratch course ``root`` with its own gradebook; raises with the log on failure."""
    env = course.nbgrader_env()
    env["CNNCOURSE_DB"] = f"sqlite:///{root / 'gradebook.db'}"
    env.pop("CNNCOURSE_ROOT", None)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scores(root: Path, assignment: str) -> dict[str, tuple[float, float]]:
    """``{student: (score, max_score)}`` for every submission of ``assignment`` in the scratch gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(assignment)}


def autograde(course_root: Path, assignment: str, submissions: dict[str, Path],
              workdir: Path | None = None) -> dict[str, tuple[float, float]]:
    """Autograde ``submissions`` (student id -> notebook file) of ``assignment`` with ``nbgrader autograde``
    in a scratch copy of the course; returns ``{student: (score, max_score)}``."""
    with tempfile.TemporaryDirectory(prefix="cnncourse-grade-") as tmp:
        root = make_course(Path(course_root), assignment, Path(workdir or tmp))
        notebooks = sorted((root / course.SOURCE_DIR / assignment).glob("*.ipynb"))
        if len(notebooks) != 1:
            raise ValueError(f"{assignment} has {len(notebooks)} notebooks; pass one submission folder per student")
        for student, path in submissions.items():
            target = root / "submitted" / student / assignment
            target.mkdir(parents=True)
            shutil.copy2(path, target / notebooks[0].name)
        run_nbgrader(root, "autograde", assignment, "--force")
        return scores(root, assignment)
