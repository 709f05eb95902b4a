"""Shared fixtures: the repository root, and the venv's bin on PATH for nbgrader's `alembic`."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers such as grader.helpers
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("MPLBACKEND", "Agg")
# Two pytest-xdist workers share two cores: one thread each (kernels and nbgrader inherit it) avoids the
# oversubscription that makes small torch models many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
