"""Every lecture runs headless, top to bottom, in SMOKE mode (papermill), with its assertions holding.

The run is the course site's (docs/build.py ``execute``): the executed notebook lands in the site's cache,
keyed by the lecture and the package sources, so the site build in CI (tests/test_site.py) reuses it instead
of running every lecture a second time. A cached result means this exact lecture already passed with this
exact package; it is not timed again.
"""
import importlib.util
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
SMOKE_BUDGET_S = 90
CACHE = ROOT / "docs" / "_build" / "executed"


def _site_build():
    spec = importlib.util.spec_from_file_location("site_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lectures_exist():
    assert LECTURES, "lectures/ has no notebooks"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_parameters_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert "SMOKE = False" in first.source, f"{path.name}: the parameters cell must set SMOKE = False"


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_runs_in_smoke_mode(path):
    build = _site_build()
    digest = build.package_digest()
    cached = build.cached_path(path, CACHE, digest).is_file()
    start = time.perf_counter()
    executed = build.execute(path, CACHE, digest)  # raises SiteError with the traceback when a cell fails
    elapsed = time.perf_counter() - start
    errors = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[e.get('ename') for e in errors]}"
    if not cached:
        assert elapsed < SMOKE_BUDGET_S, f"{path.name} took {elapsed:.0f} s in SMOKE mode (budget {SMOKE_BUDGET_S} s)"
