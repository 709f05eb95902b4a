"""The `cnncourse` command: help texts, release/--check, validate and doctor on a scratch copy of the course."""
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from cnncourse import cli, course

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scratch_course(tmp_path):
    """A copy of the course with only the conv_arithmetic assignment."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder / "conv_arithmetic", root / folder / "conv_arithmetic")
    return root


@pytest.mark.parametrize("command", [[], ["lab"], ["doctor"], ["release"], ["validate"], ["grade"], ["feedback"],
                                     ["export"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: cnncourse" in capsys.readouterr().out


def test_release_needs_one_target(scratch_course, capsys):
    assert cli.main(["--root", str(scratch_course), "release"]) == 2
    assert "name one ASSIGNMENT or pass --all" in capsys.readouterr().err


def test_unknown_assignment_lists_the_known_ones(scratch_course, capsys):
    assert cli.main(["--root", str(scratch_course), "release", "conv_layerz"]) == 1
    assert "unknown assignment 'conv_layerz': solutions/ has conv_arithmetic" in capsys.readouterr().err


def test_no_course_found_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNCOURSE_ROOT", raising=False)
    monkeypatch.setattr(course, "__file__", str(tmp_path / "a" / "b" / "course.py"))
    with pytest.raises(course.CourseError, match="set CNNCOURSE_ROOT"):
        course.find_root(tmp_path)


@pytest.mark.slow
def test_release_check_names_the_stale_notebook_and_release_fixes_it(scratch_course, capsys):
    released = scratch_course / "assignments" / "conv_arithmetic" / "conv_arithmetic.ipynb"
    nb = nbformat.read(released, as_version=4)
    nb.cells[0].source += "\nedited by hand"
    nbformat.write(nb, released)
    args = ["--root", str(scratch_course), "release", "--all"]
    assert cli.main([*args, "--check"]) == 1
    assert "assignments/conv_arithmetic/conv_arithmetic.ipynb: differs" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert (released.read_text() == (ROOT / "assignments/conv_arithmetic/conv_arithmetic.ipynb").read_text())
    assert not (scratch_course / "gradebook.db").exists(), "release must not touch the instructor's gradebook"


@pytest.mark.slow
def test_validate_reports_pass_and_fail(scratch_course, capsys):
    solution = scratch_course / "solutions" / "conv_arithmetic" / "conv_arithmetic.ipynb"
    assert cli.main(["validate", str(solution)]) == 0
    out = capsys.readouterr().out
    assert "PASS  test_conv_output_size" in out and "FAIL" not in out
    student = scratch_course / "assignments" / "conv_arithmetic" / "conv_arithmetic.ipynb"
    assert cli.main(["validate", str(student)]) == 1
    out = capsys.readouterr().out
    tests = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
             for c in nbformat.read(student, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert re.search(rf"FAIL  test_conv_output_size +0/{tests['test_conv_output_size']:g}  NotImplementedError", out)
    assert f"0/{sum(tests.values()):g} points" in out


def test_validate_corrupted_notebook(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    assert cli.main(["validate", str(broken)]) == 1
    assert "not a valid notebook" in capsys.readouterr().err


@pytest.mark.slow
def test_doctor_ok_then_reports_missing_alembic(scratch_course, capsys, monkeypatch):
    assert cli.main(["--root", str(scratch_course), "doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device" in out and "All good." in out
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(course, "release_check", lambda root, name: [])  # already checked above
    assert cli.main(["--root", str(scratch_course), "doctor"]) == 1
    assert "`alembic` is not on PATH" in capsys.readouterr().out


def test_doctor_reports_the_grading_sandbox(scratch_course, capsys, monkeypatch):
    from cnncourse.grader import sandbox

    monkeypatch.setattr(course, "release_check", lambda root, name: [])
    cli.main(["--root", str(scratch_course), "doctor"])
    works, how = sandbox.probe()
    assert f"grading     {'sandboxed' if works else 'NO SANDBOX'}: {how}" in capsys.readouterr().out
    monkeypatch.setattr(sandbox, "probe", lambda: (False, "no user namespaces here"))
    assert cli.main(["--root", str(scratch_course), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "NO SANDBOX: no user namespaces here" in out and "needs --no-sandbox" in out
