"""The student's view of an assignment in JupyterLab: the released notebook stops at the first graded cell
with the stub's NotImplementedError; the released notebook with the reference solutions filled in (a student
who solved it; hidden tests never reach students) passes every visible test and nbgrader's Validate."""
from __future__ import annotations

import shutil

import nbformat
import pytest

from jlab import (NOTEBOOK, ROOT, RUN_TIMEOUT_MS, cell, describe, error_outputs, missing_figures,
                  nbgrader_meta, open_in_lab, run_all, save, screenshot)

ASSIGNMENT = "conv_layers"
RELEASED = f"assignments/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
SOURCE = f"solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"  # the nbgrader source notebook: solutions filled in
# A student's solved copy, under the notebook's own name (its checks may read the file by name), written into
# the lab's course copy beside the released one.
SOLVED = f"solved/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"


def _require(path: str) -> None:
    if not (ROOT / path).is_file():
        pytest.fail(f"{path} is missing: the browser tests open it (run `cnncourse release {ASSIGNMENT}`?)")


def _solved_copy(lab) -> str:
    """The released notebook with each solution cell replaced by the source's (matched by grade_id), written
    into the lab's course copy; returns its path there."""
    released = nbformat.read(lab.root / RELEASED, as_version=4)
    answers = {nbgrader_meta(c)["grade_id"]: c.source
               for c in nbformat.read(lab.root / SOURCE, as_version=4).cells if nbgrader_meta(c).get("solution")}
    for c in released.cells:
        meta = nbgrader_meta(c)
        if meta.get("solution") and meta.get("grade_id") in answers:
            c.source = answers[meta["grade_id"]]
    target = lab.root / SOLVED
    if not target.parent.exists():
        shutil.copytree(lab.root / RELEASED.rsplit("/", 1)[0], target.parent)  # with any data files it needs
    nbformat.write(released, target)
    return SOLVED


def _graded(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade")]


def _show(page, index: int, name: str) -> None:
    """Scroll so that the end of cell ``index`` (its last lines and its output) is in view; save a screenshot."""
    target = cell(page, index)
    target.scroll_into_view_if_needed()
    target.evaluate("el => el.scrollIntoView({block: el.offsetHeight > 600 ? 'end' : 'center'})")
    page.wait_for_timeout(300)
    screenshot(page, name)


def test_released_notebook_stops_at_first_graded_cell_with_not_implemented(page, lab):
    _require(RELEASED)
    open_in_lab(page, lab, RELEASED, workspace="student-released")
    run_all(page)
    nb = save(page, lab, RELEASED)

    graded = _graded(nb)
    assert graded, f"{RELEASED} has no graded (test) cells"
    errors = error_outputs(nb)
    assert errors, "running the untouched student notebook raised no error: are the stubs missing?"
    index, first = errors[0]
    _show(page, index, "assignment-1-released-not-implemented")
    assert first["ename"] == "NotImplementedError", \
        f"the first error a student sees is {describe(first)} in cell {index}, not the stub's NotImplementedError"
    assert index == graded[0], (f"the first error is in cell {index}, but the first graded cell is {graded[0]}: "
                                "a setup or explanation cell fails before the student's first test")
    visible = cell(page, index).locator(".jp-OutputArea-output").inner_text()
    assert "NotImplementedError" in visible, f"the error is not shown in the browser:\n{visible[-500:]}"


def test_solved_notebook_passes_every_visible_test(page, lab):
    _require(SOURCE)
    _require(RELEASED)
    solved = _solved_copy(lab)
    open_in_lab(page, lab, solved, workspace="student-solved")
    run_all(page)
    nb = save(page, lab, solved)

    errors = error_outputs(nb)
    if errors:
        _show(page, errors[0][0], "FAILED-assignment-solved")
    assert not errors, "with the solutions filled in, cells fail: " + "; ".join(
        f"cell {i} ({nbgrader_meta(nb.cells[i]).get('grade_id', '-')}): {describe(o)}" for i, o in errors)
    graded = _graded(nb)
    not_run = [nbgrader_meta(nb.cells[i])["grade_id"] for i in graded if nb.cells[i].get("execution_count") is None]
    assert not not_run, f"graded cells that did not run: {not_run}"
    noisy = [nbgrader_meta(nb.cells[i])["grade_id"] for i in graded
             if any(o.get("name") == "stderr" for o in nb.cells[i].get("outputs", []))]
    assert not noisy, f"graded cells write to stderr (nbgrader scores such a cell 0): {noisy}"
    _show(page, graded[0], "assignment-2-solved-first-test")
    _show(page, graded[-1], "assignment-3-solved-last-test")
    assert page.locator(f"{NOTEBOOK} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']") \
        .count() == 0, "an error or warning is shown in the browser"

    # nbgrader's Validate button (what a student clicks before submitting) agrees.
    page.locator(f"{NOTEBOOK} .jp-NotebookPanel-toolbar").get_by_text("Validate", exact=True).click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=RUN_TIMEOUT_MS)  # it appears when validation (a full rerun) has finished
    page.wait_for_function("() => { const d = document.querySelector('.jp-Dialog');"
                           " return d && !/Validating/i.test(d.innerText); }", timeout=RUN_TIMEOUT_MS)
    screenshot(page, "assignment-4-solved-validate")
    result = dialog.inner_text()
    assert "passes all the tests" in result, f"nbgrader Validate says:\n{result[:1500]}"
    dialog.get_by_role("button").last.click()

    # Every drawing the text refers to is there.
    missing = missing_figures(nb)
    if missing:
        _show(page, missing[0][0], "FAILED-assignment-missing-figure")
    assert not missing, (f"{SOURCE}'s solutions: these cells draw a figure but show nothing (a trailing `;` hides the "
                         "figure cnncourse.plotting returns): " + "; ".join(f"cell {i} `{src}`" for i, src in missing))
