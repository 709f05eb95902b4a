"""The class report opened in Chromium from disk (file://, offline, no JavaScript): the histogram and the test
chart load, the per-test table shows each test's mistake breakdown, and a screenshot is saved."""
from __future__ import annotations

import sys
from pathlib import Path

from jlab import ROOT, screenshot

sys.path.insert(0, str(ROOT / "tests" / "grader"))
import report_class as rc  # noqa: E402

from cnncourse.grader import report  # noqa: E402


def test_report_page_shows_histogram_tests_and_mistakes(browser, tmp_path):
    root = rc.build(tmp_path)
    r = report.build(root, rc.ASSIGNMENT)
    page_file = report.write(r, tmp_path / "out")[0]
    context = browser.new_context(viewport={"width": 1100, "height": 900}, java_script_enabled=False,
                                  offline=True)
    try:
        page = context.new_page()
        page.goto(Path(page_file).as_uri())
        images = page.locator("img")
        assert images.count() == 2
        for i in range(2):  # decoded, not broken
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 300") is True
        table = page.locator("h2:has-text('Tests') ~ table").first
        rows = table.locator("tr")
        assert rows.count() == len(r.tests) + 1
        conv = table.locator("tr", has_text="test_conv1d")
        assert rc.LABELS[rc.FLIPPED] in conv.inner_text() and "unrecognised" in conv.inner_text()
        page.locator("h2:has-text('Tests')").scroll_into_view_if_needed()
        shot = screenshot(page, "report", full_page=False, clip={"x": 0, "y": 0, "width": 1100, "height": 900})
        assert shot.stat().st_size > 20_000
    finally:
        context.close()
