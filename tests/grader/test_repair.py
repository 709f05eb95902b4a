"""Submission intake and repair without running a kernel: regular files only, notebooks first under the
budget; notebooks rebuilt in the source's order (locked cells at their source positions, nothing of the
student's before the setup cell, the first copy of a duplicated graded cell)."""
from __future__ import annotations

import os

import nbformat
from helpers import ANSWERS_OK, answered, cell_by_id, source_notebook

from cnncourse.grader.intake import copy_submission
from cnncourse.grader.repair import grade_id, rebuild, repair_submission


def released():
    nb = source_notebook()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "raise NotImplementedError()"
    return nb


def test_rebuild_uses_the_source_order_and_keeps_the_students_extra_cells_in_place():
    student = answered(released(), ANSWERS_OK)
    early = nbformat.v4.new_code_cell("np = None  # runs before the setup in the student's order")
    note = nbformat.v4.new_code_cell("print('my check of add')")
    setup = cell_by_id(student, "setup")
    student.cells.remove(setup)
    student.cells.insert(0, early)
    student.cells.insert(student.cells.index(cell_by_id(student, "add")) + 1, note)
    student.cells.append(setup)  # setup moved to the end
    cell_by_id(student, "test_add").source = "pass"  # edited test: the source's copy comes back
    nb, restored, duplicated = rebuild(source_notebook(), student)
    order = [grade_id(c) or c.source for c in nb.cells]
    assert order == ["# Tiny assignment\nImplement `add`, `square` and `mean`.", "setup", early.source, "add",
                     note.source, "test_add", "square", "test_square", "mean", "test_mean"]
    assert cell_by_id(nb, "test_add").source == cell_by_id(source_notebook(), "test_add").source
    assert cell_by_id(nb, "add").source == ANSWERS_OK["add"]
    assert (restored, duplicated) == ([], [])
    assert len({c.id for c in nb.cells}) == len(nb.cells)


def test_duplicated_graded_cell_keeps_the_first_copy():
    student = answered(released(), ANSWERS_OK)
    copy = nbformat.from_dict(dict(cell_by_id(student, "add")))
    copy.source = "def add(a, b):\n    return 0"
    student.cells.append(copy)
    nb, _, duplicated = rebuild(source_notebook(), student)
    assert duplicated == ["add"]
    assert cell_by_id(nb, "add").source == ANSWERS_OK["add"]
    assert "nbgrader" not in nb.cells[-1].metadata and nb.cells[-1].source == copy.source


def test_deleted_cells_come_back_and_a_deleted_answer_is_unanswered():
    student = answered(released(), ANSWERS_OK)
    student.cells = [c for c in student.cells if grade_id(c) not in ("test_square", "mean")]
    nb, restored, _ = rebuild(source_notebook(), student)
    assert sorted(restored) == ["mean", "test_square"]
    assert "raise NotImplementedError()" in cell_by_id(nb, "mean").source
    assert "return sum(xs)" not in cell_by_id(nb, "mean").source  # never the reference solution


def test_intake_reads_only_regular_files_notebooks_first(tmp_path):
    src, dest = tmp_path / "sub", tmp_path / "copy"
    src.mkdir()
    nbformat.write(released(), src / "tiny.ipynb")
    (src / "a_big.bin").write_bytes(bytes(3000))
    (src / "zero").symlink_to("/dev/zero")
    (src / "linked_dir").symlink_to(tmp_path)
    os.mkfifo(src / "pipe")
    (src / "data").mkdir()
    (src / "data" / "x.txt").write_text("x")
    size = (src / "tiny.ipynb").stat().st_size
    refused = copy_submission(src, dest, budget=size + 100)
    assert sorted(p.name for p in dest.rglob("*")) == ["data", "tiny.ipynb", "x.txt"]
    assert refused == [f"a_big.bin: the submission is over {(size + 100) / 2**20:g} MB in all, not graded",
                       "linked_dir: a symbolic link, not graded", "pipe: a FIFO, not graded",
                       "zero: a symbolic link, not graded"]


def test_repair_sets_aside_unreadable_and_finds_renamed_notebooks(tmp_path):
    source_dir, sub = tmp_path / "src", tmp_path / "sub"
    source_dir.mkdir()
    sub.mkdir()
    nbformat.write(source_notebook(), source_dir / "tiny.ipynb")
    nbformat.write(answered(released(), ANSWERS_OK), sub / "tiny-Copy1.ipynb")
    (sub / "other.ipynb").write_text("{ not json")
    notes = repair_submission(source_dir, sub)
    assert notes.renamed == {"tiny-Copy1.ipynb": "tiny.ipynb"} and notes.missing == []
    assert notes.invalid and notes.invalid[0].startswith("other.ipynb (")
    assert sorted(p.name for p in sub.iterdir()) == ["other.ipynb.invalid", "tiny.ipynb"]
