"""Every lecture runs headless, top to bottom, in SMOKE mode (papermill), with its assertions holding.

The run is the course site's (docs/build.py ``execute``): the executed notebook lands in the site's cache,
keyed by the lecture and the package sources, so the site build in CI (tests/test_site.py) reuses it instead
of running every lecture a second time. A cached result means this exact lecture already passed with this
exact package; it is not timed again.
"""
import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest

from cnncourse.grader import procs

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
    executed = nbformat.read(build.execute(path, CACHE, digest), as_version=4)  # SiteError when a cell fails
    errors = [o for c in executed.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[e.get('ename') for e in errors]}"
    if not cached:
        elapsed = executed.metadata.papermill.duration  # the run that finished (a hung first run is retried)
        assert elapsed < SMOKE_BUDGET_S, f"{path.name} took {elapsed:.0f} s in SMOKE mode (budget {SMOKE_BUDGET_S} s)"


def _lecture(folder: Path, body: str) -> Path:
    """A one-cell lecture (parameters cell first, as the real ones) whose second cell is ``body``."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "99_hangs.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_lecture_run_that_hangs_once_is_run_again(tmp_path, monkeypatch, capsys):
    """A run that hangs (CI once waited 25 minutes on one) reports the running cell, the kernel's state and
    the kernel's and papermill's stacks and runs again; the second run's result is cached."""
    build = _site_build()
    monkeypatch.setattr(build, "LECTURE_TIMEOUT_S", 8)
    flag = tmp_path / "hung-once"
    lecture = _lecture(tmp_path, f"import pathlib, time\nflag = pathlib.Path({str(flag)!r})\n"
                                 "if not flag.exists():\n    flag.touch()\n    time.sleep(3600)\nprint('done')")
    executed = nbformat.read(build.execute(lecture, tmp_path / "cache", "d"), as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "done\n"
    err = capsys.readouterr().err
    assert "99_hangs.ipynb was still running after 8 s (attempt 1 of 2); running it again" in err, err
    report = err[err.index("running it again"):]
    assert "running: the lecture's cell 1: " in report and "time.sleep(3600)" in report, f"no running cell:\n{report}"
    assert re.search(r"kernel \d+: state S", report), f"no kernel state:\n{report}"
    kernel = report[report.index("the kernel's stacks:"):report.index("papermill's output and stacks:")]
    assert re.search(r'File "/tmp/ipykernel_\d+/\d+\.py", line 5 in <module>', kernel), kernel
    assert "papermill/execute.py" in report, f"no stack of papermill:\n{report}"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [build.cached_path(lecture, tmp_path / "cache",
                                                                                 "d").name]


@pytest.mark.slow
def test_a_lecture_run_that_hangs_twice_fails_naming_it(tmp_path, monkeypatch):
    build = _site_build()
    monkeypatch.setattr(build, "LECTURE_TIMEOUT_S", 8)
    lecture = _lecture(tmp_path, "import time\ntime.sleep(3600)")
    with pytest.raises(build.SiteError, match=r"99_hangs.ipynb was still running after 8 s \(attempt 2 of 2\)"):
        build.execute(lecture, tmp_path / "cache", "d")
    assert not list((tmp_path / "cache").glob("*.ipynb")), "a hung run was cached"
    assert not _processes_in(tmp_path), "papermill or its kernel was left running"


def _processes_in(folder: Path) -> list[str]:
    """Command lines of the running processes (not zombies) whose working folder is under ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(folder))
                    and procs.running(int(entry.name))):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found
