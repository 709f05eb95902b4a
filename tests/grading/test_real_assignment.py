"""The course's real ``conv_arithmetic`` through ``cnncourse grade``: the reference solution gets full marks,
and a submission that fools the visible tests (module monkeypatches of ``cnncourse.grading`` and
``numpy.testing``, a replaced ``_check``, emptied oracle lists, answers hard-coded for the visible cases) earns
nothing from the hidden tests it cheats on."""
from __future__ import annotations

import shutil

import nbformat
import pytest
from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

ASSIGNMENT = "conv_arithmetic"
CHEAT = '''\
import cnncourse.grading as _g
import numpy.testing as _npt
_Fake = type("_Fake", (), {"equal": lambda *a, **k: None, "close": lambda *a, **k: None})
_g.sealed_checker = lambda *a, **k: _Fake()
_g.assert_close = _npt.assert_allclose = _npt.assert_array_equal = lambda *a, **k: None
_check = _Fake()                       # replace the hidden tests' checker ...
_CASES.clear()                         # ... and empty their oracle list


def conv_params(c_in, c_out, f, bias=True):
    """Right only where the visible tests and the table look."""
    return {(3, 6, 5): 456, (3, 10, 5): 760, (64, 128, 3): 73728, (3, 96, 11): 34944}.get((c_in, c_out, f), 0)
'''


def test_cheat_earns_no_hidden_points(tmp_path):
    source_dir = ROOT / "solutions" / ASSIGNMENT
    if not (source_dir / f"{ASSIGNMENT}.ipynb").is_file():
        pytest.skip(f"no solutions/{ASSIGNMENT}")
    source = nbformat.read(source_dir / f"{ASSIGNMENT}.ipynb", as_version=4)
    ids = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
    if "conv_params" not in ids or "test_conv_params" not in ids:
        pytest.skip(f"{ASSIGNMENT} no longer has the conv_params / test_conv_params cells this test cheats on")
    points = ids["test_conv_params"].metadata["nbgrader"]["points"]

    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(source_dir, root / "solutions" / ASSIGNMENT)
    for student in ("honest", "cheat"):
        (root / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source, root / "submitted" / "honest" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    ids["conv_params"].source = CHEAT
    nbformat.write(source, root / "submitted" / "cheat" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")

    proc = run_cli(root, "grade", ASSIGNMENT, "--jobs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        got = {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(ASSIGNMENT)}
        cells = {g.name: g.score for nb in gb.find_submission(ASSIGNMENT, "cheat").notebooks for g in nb.grades}
    maximum = got["honest"][1]
    assert got["honest"] == (maximum, maximum), proc.stdout
    assert cells["test_conv_params"] == 0, proc.stdout
    assert got["cheat"] == (maximum - points, maximum), (cells, proc.stdout)
