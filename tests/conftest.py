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


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which tags each grouped test's id with its group
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup`` (``make test``) every test marked ``xdist_group`` must carry its group in its id,
    or xdist spreads a group over the workers and its expensive session fixture (one JupyterLab, one graded
    class, one site build) is built once per worker. pytest-xdist 3.8 sets the private ``item._nodeid``, which
    pytest 9.2 no longer reads: fail loudly instead of running the suite twice as slowly."""
    if getattr(config.option, "loadgroup", False):
        lost = [item.nodeid for item in items
                if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            raise pytest.UsageError(f"pytest-xdist did not group {len(lost)} test(s) (first: {lost[0]}): this "
                                    "pytest and pytest-xdist pair ignore xdist_group; install the versions "
                                    "constraints.txt pins")
