"""Lecture 02 in JupyterLab: the conv_explorer() widget renders (ipywidgets + ipympl lab extensions load),
and moving the stride slider changes the output-size text and the drawing."""
from __future__ import annotations

import nbformat
import pytest

from jlab import ROOT, cell, describe, error_outputs, missing_figures, open_in_lab, run_all, save, screenshot


def _lecture() -> str:
    found = sorted((ROOT / "lectures").glob("02_*.ipynb"))
    if not found:
        pytest.fail("lectures/02_*.ipynb (convolution arithmetic, with conv_explorer()) is missing")
    return found[0].relative_to(ROOT).as_posix()


def test_lecture02_conv_explorer_stride_slider_changes_output_size(page, lab):
    path = _lecture()
    nb = nbformat.read(ROOT / path, as_version=4)
    explorer = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "conv_explorer(" in c.source]
    assert explorer, f"{path} never calls conv_explorer()"

    open_in_lab(page, lab, path, workspace="lecture02")
    run_all(page)
    out = cell(page, explorer[0])
    out.scroll_into_view_if_needed()
    for broken in ("Error displaying widget", "Loading widget...", "Failed to load model class"):
        assert out.get_by_text(broken).count() == 0, f"the explorer shows {broken!r}: widget extension not loaded?"
    summary = out.locator(".widget-html", has_text="Output size").first
    summary.wait_for(timeout=30_000)
    slider = out.locator(".widget-hslider", has=page.locator(".widget-label", has_text="stride")).first
    slider.scroll_into_view_if_needed()
    figure = out.locator(".widget-output img").first
    try:
        figure.wait_for(timeout=30_000)
    except Exception:
        screenshot(page, "FAILED-lecture02-no-figure")
        shown = out.locator(".widget-output").first.inner_text()
        raise AssertionError(f"conv_explorer() shows no drawing; its output area shows {shown[:200]!r} "
                             "(a bare '<Figure size ...>' means the figure was displayed as text)") from None
    page.wait_for_timeout(500)
    screenshot(page, "lecture02-1-conv-explorer")
    before, before_src = summary.inner_text(), figure.get_attribute("src")
    logged = page.locator(".jp-LogConsoleStatusItem").first.inner_text()
    readout = slider.locator(".widget-readout")
    start = int(readout.inner_text())

    # Drag the stride handle to the right with the mouse, as a student would.
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-base")
    hbox, tbox = handle.bounding_box(), track.bounding_box()
    page.mouse.move(hbox["x"] + hbox["width"] / 2, hbox["y"] + hbox["height"] / 2)
    page.mouse.down()
    page.mouse.move(tbox["x"] + tbox["width"] * 0.5, hbox["y"] + hbox["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function("([el, text]) => el.innerText !== text", arg=[summary.element_handle(), before],
                           timeout=30_000)
    after = summary.inner_text()
    stride = int(readout.inner_text())
    assert stride != start, "dragging the stride slider did not change its value"
    assert "Output size" in after and after != before
    assert f"/ {stride} + 1" in after, f"the text does not use the new stride {stride}:\n{after}"
    # The kernel redraws the figure into the explorer (not into JupyterLab's log console).
    drawn = out.locator(".widget-output img").first
    try:
        page.wait_for_function("([cell, src]) => { const img = cell.querySelector('.widget-output img');"
                               " return img && img.getAttribute('src') !== src; }",
                               arg=[out.element_handle(), before_src], timeout=30_000)
    except Exception:
        screenshot(page, "FAILED-lecture02-stride-no-figure")
        raise AssertionError(f"the drawing did not change with the stride (explorer output: "
                             f"{out.locator('.widget-output').first.inner_text()[:200]!r}; log console "
                             f"badge: {page.locator('.jp-LogConsoleStatusItem').first.inner_text()!r})") from None
    drawn.wait_for()
    page.wait_for_timeout(500)
    screenshot(page, "lecture02-2-stride-moved")
    assert page.locator(".jp-LogConsoleStatusItem").first.inner_text() == logged, \
        "moving the slider sent output to JupyterLab's log console instead of the explorer"

    saved = save(page, lab, path)
    errors = error_outputs(saved)
    assert not errors, f"{path} fails in JupyterLab: " + "; ".join(f"cell {i}: {describe(o)}" for i, o in errors)
    missing = missing_figures(saved)
    assert not missing, f"{path}: these cells draw a figure but show nothing: " + "; ".join(
        f"cell {i} `{src}`" for i, src in missing)
    assert not page.page_errors, f"JavaScript errors in JupyterLab: {page.page_errors}"
