"""Every assignment through real `nbgrader autograde`: the source notebook (reference solutions) scores full
marks, the released student notebook scores 0, and the grader finishes normally for both.

Hidden tests run as in a class: the preprocessors listed in nbgrader_config.py place each student's inputs
(derived from CNNCOURSE_SECRET) and check the answers with the assignment's oracle."""
import sys
from pathlib import Path

import pytest

from cnncourse import course

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grader"))
from helpers import autograde  # noqa: E402  (tests/grader/helpers.py: nbgrader on a scratch course)

ASSIGNMENTS = course.assignment_names(ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_and_release_zero(assignment, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCOURSE_SECRET", "test-assignments-secret")
    source = next((ROOT / course.SOURCE_DIR / assignment).glob("*.ipynb"))
    released = ROOT / course.RELEASE_DIR / assignment / source.name
    assert released.is_file(), f"{released} missing: run `cnncourse release {assignment}`"
    assert not list(released.parent.glob("oracle*.py")), f"{assignment}'s oracle must never be released"
    result = autograde(ROOT, assignment, {"reference": source, "unattempted": released}, workdir=tmp_path)
    score, maximum = result["reference"]
    assert maximum > 0
    assert score == maximum, f"the reference solution of {assignment} scored {score}/{maximum}"
    assert result["unattempted"] == (0.0, maximum), f"the released {assignment} notebook scored {result['unattempted']}"
