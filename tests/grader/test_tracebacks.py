"""The warm kernels' cheaper tracebacks (cnncourse.grader.tracebacks) print exactly what IPython prints without
them. Each case runs in a fresh interpreter (the changes are process-wide, as in the zygote)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A student's failing cells, formatted by a shell as a grading kernel's (Context mode, colours on): a stub,
# a wrong answer under an assert, an error in a library (numpy) and in a function another cell defined, a
# syntax error, and a traceback through a module of the course's package.
PROGRAM = r"""
import json, sys
if sys.argv[1] == "changed":
    from cnncourse.grader import tracebacks
    tracebacks.install()
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
config = Config()
config.HistoryManager.hist_file = ":memory:"
config.InteractiveShell.colors = "linux"
shell = InteractiveShell(config=config)
shown = []
shell._showtraceback = lambda etype, evalue, stb: shown.append(stb)
for cell in ["def conv_out(n, k, s=1, p=0):\n    raise NotImplementedError()",
             "conv_out(32, 3)",
             "def params(c_in, c_out, k):\n    return c_in * c_out * k\nassert params(3, 8, 3) == 224, 'params: 216 != 224'",
             "import numpy as np\nnp.zeros((2, 3)) @ np.zeros((2, 3))",
             "def helper(x):\n    return x[5]\n\nhelper([1, 2])",
             "def broken(:\n    pass",
             "from cnncourse.arithmetic import out_size\nout_size(4, 9, stride=1, pad=0)"]:
    shell.run_cell(cell, store_history=True)
print(json.dumps(shown))
"""


def tracebacks_of(variant: str) -> list[list[str]]:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, variant], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def stock():
    return tracebacks_of("stock")


def test_the_changed_kernel_prints_the_same_tracebacks(stock):
    assert len(stock) == 6 and all(stock), "every failing cell shows a traceback"
    assert any("NotImplementedError" in line for line in stock[0])
    assert any("\x1b[" in line for tb in stock for line in tb), "highlighted, as in a kernel"
    assert tracebacks_of("changed") == stock


def test_install_changes_what_it_says():
    program = r"""
import inspect, linecache, stack_data.core, stack_data.utils
from cnncourse.grader import tracebacks
tracebacks.install()
assert inspect.getmodule.__wrapped_scan__ is not None
assert stack_data.core._pygmented_with_ranges is not stack_data.utils._pygmented_with_ranges
# a cell's file, registered as IPython registers it: no scan, None; a module's file still resolves
linecache.cache["/tmp/ipykernel_1/123.py"] = (9, None, ["x = 1/0\n"], "/tmp/ipykernel_1/123.py")
code = compile("x = 1/0\n", "/tmp/ipykernel_1/123.py", "exec")
assert inspect.getmodule(code, "/tmp/ipykernel_1/123.py") is None
assert inspect.getmodule(inspect.getmodule.__code__, inspect.__file__) is inspect
tracebacks.install()  # twice: no second wrapper
assert not hasattr(inspect.getmodule.__wrapped_scan__, "__wrapped_scan__")
"""
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
