"""The course site (`make site`, docs/build.py): every lecture executed in SMOKE mode and said so, no error
output, every figure with alt text, answers collapsed, a landing page with the lecture -> assignment map and
time estimates, assignment pages without solutions or hidden tests; two pages opened in Chromium with a
figure visible (screenshots in reports/site/).

Marked ``site``: CI runs it (`CI=true make test`); a local `make test` leaves it out, `make site` builds.
"""
from __future__ import annotations

import concurrent.futures
import html
import re
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))
from jlab import CHROMIUM_ARGS, ENABLE_HINT, chromium_path  # noqa: E402

LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
ASSIGNMENTS = sorted(p.name for p in (ROOT / "assignments").iterdir() if (p / f"{p.name}.ipynb").is_file())
SHOTS = ROOT / "reports" / "site"
BUILD_TIMEOUT_S = 1500

pytestmark = [pytest.mark.slow, pytest.mark.site, pytest.mark.xdist_group("site")]


class Page(HTMLParser):
    """The parts of an HTML page the checks need: images, <details> elements, links and visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.details: list[dict] = []
        self.links: list[str] = []
        self.classes: list[str] = []
        self.feed(text)
        self.text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", text, flags=re.S)))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.classes += (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs)
        elif tag == "details":
            self.details.append(attrs)
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once for these tests (executed lectures come from docs/_build/executed when unchanged)."""
    out = tmp_path_factory.mktemp("site") / "html"
    log = out.parent / "build.log"  # a file, not a pipe: a process the build leaves behind cannot hold it open
    # One lecture at a time: the test suite's other xdist worker keeps the second core busy.
    with open(log, "w") as sink:
        try:
            code = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--out", str(out), "--jobs", "1"],
                                  stdout=sink, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL).returncode
        except subprocess.TimeoutExpired:
            code = None
    text = log.read_text(errors="replace")
    assert code is not None, f"`make site` still running after {BUILD_TIMEOUT_S} s; its output:\n{text[-8000:]}"
    assert code == 0, f"`make site` failed:\n{text[-8000:]}"
    assert "figure without alt text" not in text, text[-3000:]
    if "site: warning:" in text:  # a hung lecture run, run again (docs/build.py): shown in the test summary
        warnings.warn(text[text.index("site: warning:"):][:3000], stacklevel=1)
    return out


def page(site: Path, relative: str) -> Page:
    path = site / relative
    assert path.is_file(), f"{relative} was not built; pages: {sorted(p.name for p in site.rglob('*.html'))}"
    return Page(path.read_text())


def test_lectures_executed_in_smoke_mode_without_errors(site):
    assert LECTURES, "lectures/ has no notebooks"
    figures = 0
    for lecture in LECTURES:
        p = page(site, f"lectures/{lecture.stem}.html")
        assert "executed in SMOKE mode" in " ".join(p.text.split()), f"{lecture.name}: no SMOKE-mode note"
        assert "traceback" not in p.classes and "Traceback (most recent call last)" not in p.text, \
            f"{lecture.name} shows an error output"
        source = nbformat.read(lecture, as_version=4)
        has_code = any(c.cell_type == "code" for c in source.cells)
        assert not has_code or "output" in p.classes, f"{lecture.name}: no cell output on the page (not executed?)"
        figures += len(p.images)
    assert figures, "no lecture page shows a figure"


def test_every_figure_has_alt_text(site):
    pages = sorted(site.rglob("*.html"))
    for path in pages:
        for img in Page(path.read_text()).images:
            assert (img.get("alt") or "").strip(), f"{path.relative_to(site)}: <img src={img.get('src')}> has no alt"


def test_answers_are_collapsed(site):
    collapsed = 0
    for lecture in LECTURES:
        expected = sum(c.source.count("<details") for c in nbformat.read(lecture, as_version=4).cells
                       if c.cell_type == "markdown")
        details = page(site, f"lectures/{lecture.stem}.html").details
        assert len(details) == expected, f"{lecture.name}: {expected} collapsible answers, {len(details)} on the page"
        assert not [d for d in details if "open" in d], f"{lecture.name}: an answer is shown expanded"
        collapsed += expected
    assert collapsed, "no lecture has a collapsed answer"


def test_landing_page_maps_lectures_to_assignments_with_times(site):
    index = page(site, "index.html")
    text = " ".join(index.text.split())
    for lecture in LECTURES:
        assert f"lectures/{lecture.stem}.html" in index.links, f"the landing page does not link {lecture.name}"
    for name in ASSIGNMENTS:
        assert f"assignments/{name}.html" in index.links, f"the landing page does not link assignment {name}"
    table = re.search(r"<table.*?</table>.*?(<table.*?</table>)", (site / "index.html").read_text(), flags=re.S)
    assert table, "the landing page has no assignment table"
    for row in re.findall(r"<tr.*?</tr>", table.group(1), flags=re.S)[1:]:
        assert "lectures/" in row, f"an assignment row names no lecture it builds on: {Page(row).text.strip()}"
        assert re.search(r"\d+(\.\d)?\s*(min|h)\b", Page(row).text), f"an assignment row has no time: {row[:300]}"
    assert text.count(" min") >= len(LECTURES), "not every lecture has a time estimate"


def _secret_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Lines between the solution and hidden-test markers of a source notebook."""
    secret, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if re.search(r"### BEGIN (SOLUTION|HIDDEN TESTS)", line):
                inside = True
            elif re.search(r"### END (SOLUTION|HIDDEN TESTS)", line):
                inside = False
            elif inside and len(line.strip()) > 25:
                secret.append(line.strip())
    return secret


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assignment_pages_show_no_solution_or_hidden_test(site, name):
    text = " ".join(page(site, f"assignments/{name}.html").text.split())
    assert "read-only copy" in text
    assert "raise NotImplementedError()" in text, "the student stubs are not on the page"
    released = nbformat.read(ROOT / "assignments" / name / f"{name}.ipynb", as_version=4)
    shown_to_students = " ".join(" ".join(c.source.split()) for c in released.cells)  # e.g. named in the prose
    for source in (ROOT / "solutions" / name).glob("*.ipynb"):
        secret = {" ".join(line.split()) for line in _secret_lines(nbformat.read(source, as_version=4))}
        leaked = [line for line in secret if line not in shown_to_students and line in text]
        assert not leaked, f"{name}'s page shows solution or hidden-test lines: {leaked[:3]}"


def test_two_pages_in_chromium(site):
    if chromium_path() is None:
        pytest.skip(f"Chromium not found; {ENABLE_HINT}")
    lecture = next((l for l in LECTURES if page(site, f"lectures/{l.stem}.html").images), None)
    assert lecture is not None, "no lecture page has a figure"
    SHOTS.mkdir(parents=True, exist_ok=True)
    # In a thread of its own: the browser tests' session-wide Playwright may keep an event loop running in this
    # xdist worker's main thread, and the sync API refuses to start inside one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_look_at_two_pages, site, lecture).result()


def _look_at_two_pages(site: Path, lecture: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.goto((site / "index.html").as_uri(), wait_until="domcontentloaded")
            assert tab.locator("table").count() >= 2, "the landing page shows no lecture/assignment tables"
            tab.screenshot(path=str(SHOTS / "index.png"), full_page=True)

            tab.goto((site / "lectures" / f"{lecture.stem}.html").as_uri(), wait_until="domcontentloaded")
            assert tab.locator(".output.traceback, .traceback").count() == 0, f"{lecture.name} shows an error"
            assert tab.get_by_text("executed in SMOKE mode").first.is_visible(), "no SMOKE note at the top"
            tab.screenshot(path=str(SHOTS / f"{lecture.stem}-top.png"))
            figure = tab.locator("div.cell_output img").first
            figure.scroll_into_view_if_needed()
            box = figure.bounding_box()
            loaded = figure.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")
            assert loaded and box and box["width"] > 100 and box["height"] > 50, f"figure not drawn: {box}"
            assert figure.get_attribute("alt"), "the figure has no alt text"
            answers = tab.locator("details")
            if answers.count():
                assert not answers.first.evaluate("d => d.open"), "an answer is expanded"
            tab.screenshot(path=str(SHOTS / f"{lecture.stem}-figure.png"))
        finally:
            browser.close()
