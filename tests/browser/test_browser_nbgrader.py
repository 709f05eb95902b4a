"""The instructor's view: nbgrader's JupyterLab extensions load, the formgrader lists the course's
assignments, releasing one puts it in the students' Assignment List."""
from __future__ import annotations


from jlab import ROOT, menu, open_in_lab, screenshot


def _assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def test_nbgrader_extensions_formgrader_and_assignment_list(page, lab):
    open_in_lab(page, lab, workspace="instructor")

    # The Nbgrader menu of the lab extension, with the student and the instructor entries.
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
    items = page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").all_inner_texts()
    screenshot(page, "nbgrader-1-menu")
    for expected in ("Assignment List", "Formgrader"):
        assert expected in items, f"the Nbgrader menu lacks {expected!r} (has {items}): is the nbgrader lab extension enabled?"
    page.keyboard.press("Escape")

    # Formgrader (instructor): every assignment in solutions/ is listed.
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator(".jp-MainAreaWidget:not(.lm-mod-hidden) iframe")
    formgrader.get_by_text("Manage Assignments").first.wait_for()
    table = formgrader.locator("#main-table")
    names = _assignments()
    for name in names:
        table.get_by_text(name, exact=True).wait_for(timeout=30_000)
    screenshot(page, "nbgrader-2-formgrader")

    # Release the first assignment to the (temporary) exchange from the formgrader, as an instructor would.
    name = names[0]
    row = table.locator("tr", has=formgrader.get_by_text(name, exact=True))
    row.locator("a:has(.glyphicon-cloud-upload)").click()
    result = formgrader.locator("#success-modal, #error-modal").first
    result.wait_for(timeout=60_000)
    page.wait_for_timeout(600)  # let the dialog finish fading in
    screenshot(page, "nbgrader-3-released")
    assert result.get_attribute("id") == "success-modal", f"releasing {name} failed: {result.inner_text()}"
    result.locator("button[data-dismiss='modal']").first.click()
    table.locator("tr", has=formgrader.get_by_text(name, exact=True)).get_by_text("released").wait_for()

    # Assignment List (student): the released assignment is offered for fetching.
    menu(page, "Nbgrader", "Assignment List")
    released = page.locator("#released_assignments_list")
    released.get_by_text(name).first.wait_for(timeout=30_000)
    screenshot(page, "nbgrader-4-assignment-list")
    assert not page.page_errors, f"JavaScript errors in JupyterLab: {page.page_errors}"
