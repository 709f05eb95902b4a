"""Small Playwright helpers for driving JupyterLab the way a person does (menus, keyboard, sliders)."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "browser"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
RUN_TIMEOUT_MS = 300_000  # Run All of conv_layers trains for ~30 s of CPU; a loaded 2-core machine triples it
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-extensions", "--mute-audio", "--no-first-run"]
ENABLE_HINT = ("browser tests need Chromium: `sudo apt-get install chromium` (Debian/Ubuntu; .ci/run installs it) "
               "or set CNNCOURSE_CHROMIUM=/path/to/chrome; and the `playwright` package (`pip install -e '.[dev]'`)")


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    env = os.environ.get("CNNCOURSE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a screenshot as reports/browser/<name>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path


def open_in_lab(page, lab, path: str = "", workspace: str = "test"):
    """Open JupyterLab (optionally a file) in a fresh workspace, so no tab of an earlier test reappears."""
    where = f"lab/workspaces/{workspace}" + (f"/tree/{path}" if path else "")
    page.goto(lab.url(where + "?reset"))
    page.wait_for_selector(".jp-DirListing-item", timeout=60_000)
    if path.endswith(".ipynb"):
        page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=60_000)
        # The kernel is ready once the toolbar shows its name (not "No Kernel") and the indicator is idle.
        page.wait_for_function(
            """(sel) => {
                const p = document.querySelector(sel);
                if (!p) return false;
                const ind = p.querySelector('.jp-Notebook-ExecutionIndicator');
                const name = p.querySelector('.jp-KernelName');
                return ind && ind.dataset.status === 'idle' && name && /python/i.test(name.textContent);
            }""", arg=NOTEBOOK, timeout=90_000)


def menu(page, top: str, item: str) -> None:
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-item", has_text=top).filter(has_text=top).first.click()
    page.locator(".lm-Menu-item:visible", has=page.locator(".lm-Menu-itemLabel", has_text=item)).first.click()


def run_all(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running (JupyterLab stops at an error)."""
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """(sel) => Array.from(document.querySelectorAll(sel + ' .jp-InputArea-prompt'))
                       .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""", arg=NOTEBOOK, timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the notebook's kernel is idle and no prompt shows [*], twice in a row 0.5 s apart."""
    check = """(sel) => {
        const p = document.querySelector(sel);
        const ind = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
        const busy = Array.from(p.querySelectorAll('.jp-InputArea-prompt')).some(e => e.textContent.includes('*'));
        return ind && ind.dataset.status === 'idle' && !busy;
    }"""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        page.wait_for_function(check, arg=NOTEBOOK, timeout=max(1, int((deadline - time.monotonic()) * 1000)))
        page.wait_for_timeout(500)
        if page.evaluate(check, NOTEBOOK):
            return


def save(page, lab, path: str) -> nbformat.NotebookNode:
    """Save the open notebook (Ctrl+S) and return it as written to disk by JupyterLab."""
    target = Path(lab.root) / path
    before = target.stat().st_mtime_ns
    page.locator(f"{NOTEBOOK} .jp-Notebook").first.click(position={"x": 5, "y": 5})  # focus, command mode
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 20
    while target.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"JupyterLab did not save {path} within 20 s")
        time.sleep(0.2)
    time.sleep(0.3)  # let the write finish
    return nbformat.read(target, as_version=4)


def cell(page, index: int):
    """The locator of the notebook's cell number ``index`` (0-based, as in the .ipynb file)."""
    return page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)


def error_outputs(nb) -> list[tuple[int, dict]]:
    """(cell index, error output) for every error output of a notebook read from disk."""
    return [(i, out) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for out in c.get("outputs", []) if out.get("output_type") == "error"]


def nbgrader_meta(c) -> dict:
    return c.get("metadata", {}).get("nbgrader", {})


def describe(out: dict) -> str:
    return f"{out.get('ename')}: {out.get('evalue')}"


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:2000]


def missing_figures(nb) -> list[tuple[int, str]]:
    """Code cells that end with a call to a cnncourse drawing function (``plot_*``/``draw_*``) but show no
    image: e.g. a trailing ``;`` hides the figure that the function returns (it closes it in pyplot)."""
    import ast

    missing = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        source = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        last = body[-1] if body else None
        if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
            continue
        func = last.value.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name.startswith(("plot_", "draw_")) and not any(
                "image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            missing.append((i, c.source.strip().splitlines()[-1].strip()))
    return missing
