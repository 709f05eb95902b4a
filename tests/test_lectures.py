"""Every lecture runs headless, top to bottom, in SMOKE mode (papermill), with its assertions holding."""
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
SMOKE_BUDGET_S = 90


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
def test_lecture_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    start = time.perf_counter()
    papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters={"SMOKE": True},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    elapsed = time.perf_counter() - start
    assert elapsed < SMOKE_BUDGET_S, f"{path.name} took {elapsed:.0f} s in SMOKE mode (budget {SMOKE_BUDGET_S} s)"
