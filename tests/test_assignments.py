"""Every assignment through real `nbgrader autograde`: the source notebook (reference solutions) scores full
marks, the released student notebook scores 0, and the grader finishes normally for both."""
from pathlib import Path

import pytest

from cnncourse import course
from nbgrader_helpers import autograde

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_names(ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_and_release_zero(assignment, tmp_path):
    source = next((ROOT / course.SOURCE_DIR / assignment).glob("*.ipynb"))
    released = ROOT / course.RELEASE_DIR / assignment / source.name
    assert released.is_file(), f"{released} missing: run `cnncourse release {assignment}`"
    result = autograde(ROOT, assignment, {"reference": source, "unattempted": released}, workdir=tmp_path)
    score, maximum = result["reference"]
    assert maximum > 0
    assert score == maximum, f"the reference solution of {assignment} scored {score}/{maximum}"
    assert result["unattempted"] == (0.0, maximum), f"the released {assignment} notebook scored {result['unattempted']}"
