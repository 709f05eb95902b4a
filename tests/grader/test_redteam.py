"""Red-team regressions: ways a hostile student got hidden-test points past the own-code rule, each closed.

Every source below got through the rule before (``problems`` returned nothing) and computes the answer with
what the rule forbids: a name the locked setup cell imported (``os.popen``, torch's ``conv2d``, ``digits``),
a dunder or private attribute (``__getattribute__`` to ``__globals__``; ``np._core.function_base._nx.builtins``),
a module numpy or torch re-export (``np.f2py.os``, ``torch.importlib``), or pickled code run by ``np.load``.
One real ``cnncourse grade`` run of a purpose-built assignment checks the setup-name and dunder attacks end to
end (0 hidden points, the honest student full marks)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from helpers import ROOT, cell_by_id, run_cli
from nbformat.v4 import new_code_cell, new_notebook

from cnncourse.grader.cases import load_oracle
from cnncourse.grader.secret import ENV_VAR
from cnncourse.testcells.owncode import OwnCode, check_notebook, given_names, locked_cells, problems, student_cells

RULE = OwnCode(allowed=("numpy", "math"), forbidden=("torch", "cnncourse"))  # conv_layers' rule
SETUP = ("import os\nimport numpy as np\nimport torch\nfrom torch.nn.functional import conv2d\n"
         "from cnncourse.data import digits\nfrom cnncourse.testcells.compare import assert_close")

ATTACKS = {
    "setup's os": ("def f(x):\n    return int(os.popen(f'echo $(({x}*{x}))').read())", "uses `os`"),
    "setup's conv2d": ("def f(x, w):\n    return conv2d(x, w).numpy()", "uses `conv2d`"),
    "setup's digits (tensors)": ("t = digits()[0].images", "uses `digits`"),
    "__getattribute__": ("def f():\n    g = (lambda: 0).__getattribute__('__glo' + 'bals__')\n"
                         "    return g['__buil' + 'tins__']", "`.__getattribute__`"),
    "__self__": ("def f(g):\n    return g.__self__", "`.__self__`"),
    "numpy private path to builtins": ("def f():\n    return np._core.function_base._nx.builtins.exec",
                                       "`._nx`"),
    "numpy re-exported os": ("def f():\n    return np.f2py.os.system('true')", "`.os`"),
    "torch re-exported importlib": ("def f(t):\n    return t.importlib.import_module('cnncourse')", "`.importlib`"),
    "pickle via np.load": ("def f():\n    open('p.npy', 'wb').write(b'...')\n"
                           "    return np.load('p.npy', allow_pickle=True)", "`allow_pickle=`"),
    "pickle via positional np.load": ("def f():\n    return np.load('p.npy', None, True)", "loading pickled"),
    "__builtins__ as a default argument": ("def f(b=__builtins__):\n    return b", "`__builtins__`"),
    "numpy's f2py imported by name": ("from numpy import f2py", "`import numpy.f2py`"),
    "numpy private module": ("import numpy._core.function_base as fb", "`import numpy._core"),
    "native code from numpy": ("def f():\n    return np.ctypeslib.load_library('x', '.')", "`.ctypeslib`"),
    "string annotations evaluated": ("from typing import get_type_hints", "`import typing.get_type_hints`"),
}
ANY_RULE = OwnCode(forbidden=("cnncourse", "data", "train"))  # cnn_architectures' rule: torch allowed
ANY_ATTACKS = {  # each imports a module named in a string, or runs a string as code
    "pkgutil.resolve_name": ("import pkgutil\nd = pkgutil.resolve_name('cnncourse.data:shapes')", "`import pkgutil`"),
    "operator.attrgetter": ("import operator\ng = operator.attrgetter('__globals__')", "`import operator`"),
    "timeit runs a string": ("import timeit\ntimeit.timeit('import cnncourse', number=1)", "`import timeit`"),
    "mock.patch imports a string": ("from unittest import mock", "`import unittest`"),
    "torch benchmark Timer runs a string": ("def f(t):\n    return t.utils.benchmark.Timer(stmt='import cnncourse')",
                                            "`.benchmark`"),
    "torch collect_env runs a shell": ("def f(t):\n    return t.utils.collect_env.run('ls')", "`.collect_env`"),
    "os.system runs a python that imports anything": ("import os\nos.system('python -c 1')", "`.system`"),
    "torch.package runs code from a zip it wrote": ("def f(t, z):\n    return t.package.PackageImporter(z)",
                                                    "`.package`"),
}


def test_a_module_the_submission_wrote_cannot_be_imported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helper.py").write_text("from cnncourse.data import shapes\n")  # what the student's cell wrote
    for source in ("import helper", "from helper import shapes"):
        assert any("not installed" in line for line in problems([source], ANY_RULE)), source
    assert problems(["import numpy, math, torch, collections, matplotlib.pyplot"], ANY_RULE) == []


def test_setup_imports_of_refused_modules_become_refused_names():
    assert given_names([SETUP], RULE) == {"os", "torch", "conv2d", "digits"}  # assert_close: a student helper
    # where torch is allowed the rule refuses only its own names: the budget tool layer_table stays usable
    assert given_names(["from cnncourse.arithmetic import layer_table\nimport os"], ANY_RULE) == set()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_bypass_is_refused(attack):
    source, found = ATTACKS[attack]
    got = problems([source], RULE, given_names([SETUP], RULE))
    assert any(found in line for line in got), got


@pytest.mark.parametrize("attack", sorted(ANY_ATTACKS))
def test_string_imports_and_string_code_are_refused_where_torch_is_allowed(attack):
    source, found = ANY_ATTACKS[attack]
    assert any(found in line for line in problems([source], ANY_RULE)), problems([source], ANY_RULE)


def test_honest_idioms_stay_allowed():
    source = ("class Net:\n    def __init__(self):\n        super().__init__()\n        self._cache = None\n\n"
              "    def name(self):\n        return type(self).__name__, self._cache\n\n"
              "def f(x):\n    assert_close(np.load('w.npy'), x)\n    return np.maximum(x, 0)")
    assert problems([source], RULE, given_names([SETUP], RULE)) == []
    torch_code = ("from __future__ import annotations\nfrom typing import Optional\nimport torch.nn as nn\n"
                  "from torch import nn\nimport torch.nn.functional as F\ntorch.backends.cudnn.benchmark = True\n\n"
                  "def f(model: nn.Module) -> Optional[int]:\n    return len(list(model.modules()))")
    assert problems([torch_code], ANY_RULE) == []


def test_reference_solutions_follow_the_hardened_rule():
    for folder in sorted((ROOT / "solutions").iterdir()):
        oracle = load_oracle(ROOT, folder.name)
        nb = json.loads((folder / f"{folder.name}.ipynb").read_text())
        given = given_names(locked_cells(nb), oracle.rules)
        assert problems(student_cells(nb), oracle.rules, given) == [], folder.name


def test_conv_layers_torch_from_its_setup_cell_is_refused():
    """conv_layers' setup imports torch's conv2d and pooling (for its visible demos): an answer calling them
    broke no rule before."""
    nb = json.loads((ROOT / "solutions" / "conv_layers" / "conv_layers.ipynb").read_text())
    rule = load_oracle(ROOT, "conv_layers").rules
    given = given_names(locked_cells(nb), rule)
    assert {"conv2d", "max_pool2d", "avg_pool2d", "digits", "os"} <= given
    cheat = ("def conv_forward_naive(x, w, b, conv_param):\n    t = digits()[0].images\n"
             "    out = conv2d(t.new_tensor(x), t.new_tensor(w), t.new_tensor(b), stride=conv_param['stride'],\n"
             "                 padding=conv_param['pad'])\n    return out.numpy(), (x, w, b, conv_param)")
    assert {"uses `conv2d`", "uses `digits`"} <= {line.split(": ", 1)[1].split(",")[0]
                                                  for line in problems([cheat], rule, given)}


def test_visible_check_refuses_the_setups_names(tmp_path, monkeypatch):
    setup = new_code_cell(SETUP, metadata={"nbgrader": {"locked": True, "grade_id": "setup"}})
    answer = new_code_cell("def f(x):\n    return os.popen('echo 4').read()",
                           metadata={"nbgrader": {"solution": True, "grade_id": "f"}})
    nbformat.write(new_notebook(cells=[setup, answer]), tmp_path / "a.ipynb")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="uses `os`"):
        check_notebook("a.ipynb", RULE)


# ------------------------------------------------------------------ one real grading run
ORACLE = '''
from cnncourse.grader.cases import Test
from cnncourse.testcells.owncode import OwnCode

RULES = OwnCode(allowed=("math",), forbidden=("torch", "decimal"))


def _cases(rng):
    return [{"args": [int(rng.integers(1, 1000))], "kwargs": {}} for _ in range(3)]


def _check(case, got):
    if type(got) is not int or got != case["args"][0] ** 2:
        return f"square({case['args'][0]}) returned a wrong answer"
    return None


TESTS = {"square": Test(cases=_cases, check=_check)}
'''
SQ_SETUP = "import os\nimport math\nfrom cnncourse.testcells import hidden"
SQ_TEST = 'assert square(3) == 9\n### BEGIN HIDDEN TESTS\nhidden.check("square", square)\n### END HIDDEN TESTS'
SQ_ANSWERS = {
    "honest": ("def square(x):\n    return x * x", 2.0),
    "setup_os": ("def square(x):\n    return int(os.popen(f'echo $(({x}*{x}))').read())", 0.0),
    "dunder": ("def square(x):\n    b = (lambda: 0).__getattribute__('__glo' + 'bals__')['__builtins__']\n"
               "    return int(b.__import__('decimal').Decimal(x) ** 2)", 0.0),
}


def _meta(grade_id, **flags):
    return {"nbgrader": {"grade": False, "solution": False, "locked": False, "grade_id": grade_id,
                         "schema_version": 3, **flags}}


def _sq_course(where: Path) -> tuple[Path, nbformat.NotebookNode]:
    import shutil

    from cnncourse.grader import gradebook
    from cnncourse.grader.layout import Course

    root = where / "course"
    (root / "solutions" / "sq").mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nb = new_notebook(cells=[
        new_code_cell(SQ_SETUP, metadata=_meta("setup", locked=True)),
        new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                      metadata=_meta("square", solution=True)),
        new_code_cell(SQ_TEST, metadata=_meta("test_square", grade=True, locked=True, points=2))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "solutions" / "sq" / "sq.ipynb")
    (root / "solutions" / "sq" / "oracle.py").write_text(ORACLE)
    gradebook.fast_alembic_version()
    gradebook.generate(Course.load(root), "sq", where / "release", f"sqlite:///{where / 'r.db'}")
    return root, nbformat.read(where / "release" / "course" / "assignments" / "sq" / "sq.ipynb", as_version=4)


def test_real_grading_gives_the_bypasses_no_hidden_points(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    monkeypatch.setenv(ENV_VAR, "redteam-secret")
    root, released = _sq_course(tmp_path)
    for student, (answer, _) in SQ_ANSWERS.items():
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        cell_by_id(nb, "square").source = answer
        folder = root / "submitted" / student / "sq"
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
        nbformat.write(nb, folder / "sq.ipynb")
    proc = run_cli(root, "grade", "sq", "--jobs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "cnncourse") as gb:
        got = {s.student.id: s.score for s in gb.assignment_submissions("sq")}
    assert got == {student: points for student, (_, points) in SQ_ANSWERS.items()}
    for student in ("setup_os", "dunder"):
        entry = json.loads((root / "autograded" / ".cnncourse-grade" / "sq" / f"{student}.json").read_text())
        assert "is not allowed" in entry["tests"]["sq"]["test_square"]["message"], entry
    assert not os.path.exists(root / "autograded" / "honest" / "sq" / ".cnncourse_cases.json")


# ------------------------------------------------------------------ the grader's own output stays small
ECHO_ORACLE = """
from cnncourse.grader.cases import Test, call_text, wrong_answer


def _cases(rng):
    return [{"args": [int(rng.integers(1, 1000))], "kwargs": {}} for _ in range(3)]


def _check(case, got):
    return None if got == case["args"][0] ** 2 else wrong_answer(call_text("square", case), got)


TESTS = {"square": Test(cases=_cases, check=_check)}
"""


def test_a_huge_wrong_answer_gives_a_short_failure_message(tmp_path, monkeypatch):
    """The oracle's message quotes the answer: 1 MB of it would land in autograded/, the journal and the report,
    past the sandbox's output budget."""
    from test_hidden_grader import grade, notebook

    from cnncourse.grader.hidden import FAILED, MAX_MESSAGE

    monkeypatch.setenv(ENV_VAR, "redteam-secret")
    (tmp_path / "solutions" / "sq").mkdir(parents=True)
    (tmp_path / "solutions" / "sq" / "oracle.py").write_text(ECHO_ORACLE)
    nbformat.write(notebook("x * x"), tmp_path / "solutions" / "sq" / "sq.ipynb")
    cell, record = grade(tmp_path, notebook("x * x"), lambda x: "A" * 1_000_000)
    assert not record["passed"] and "returned 'AAAA" in record["message"]
    assert len(record["message"]) <= MAX_MESSAGE + 100 and len(cell.outputs[-1].evalue) <= MAX_MESSAGE + 100
    assert cell.outputs[-1].ename == FAILED


# ------------------------------------------------------------------ the sandbox's disk budget
def test_dev_shm_is_not_a_second_unbounded_disk(tmp_path):
    """/dev/shm was a tmpfs without a size (half the machine's RAM), beside the kernel's budgeted /tmp."""
    import subprocess
    import sys

    from cnncourse.grader import sandbox

    works, why = sandbox.probe()
    if not works:
        pytest.skip(why)
    fill = ("import os\nn = 0\ntry:\n    for i in range(8):\n        with open(f'/dev/shm/f{i}', 'wb') as f:\n"
            "            f.write(bytes(4 << 20))\n        n += 4\nexcept OSError:\n    pass\nprint(n)")
    proc = subprocess.run(sandbox.base_args(sandbox.bwrap_path(), tmp_path / "none", disk_mb=8)
                          + ["--", sys.executable, "-c", fill], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) <= 8  # MB: within the kernel's disk budget (32 MB got through before)


def test_the_socket_folder_is_not_an_unbounded_disk(tmp_path):
    """The ipc folder is bound read-write into the sandbox (the kernel creates its sockets there) and lies on the
    grader's disk: a kernel wrote 64 MB there with a disk budget of 8 MB. The watchdog now kills it."""
    import subprocess
    import sys

    from cnncourse.grader.execute import ProcessWatchdog

    ipc = tmp_path / "ipc"
    ipc.mkdir()
    (ipc / "k-1").write_bytes(b"socket")
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watchdog = ProcessWatchdog(kernel.pid, max_procs=64, interval=0.05, folder=str(ipc), max_bytes=1 << 20)
    watchdog.start()
    try:
        assert kernel.poll() is None and watchdog.reason is None  # within the budget: left alone
        (ipc / "fill").write_bytes(bytes(2 << 20))
        assert kernel.wait(timeout=10) != 0 and "disk budget" in watchdog.reason
    finally:
        watchdog.stopped.set()
        kernel.kill()
        kernel.wait()


def test_forged_arrays_of_odd_dtypes_are_unreadable():
    """A forged answer may hold any .npy without pickle: 10**15 entries of a zero-size dtype decoded in no
    time and reached the oracles' checks; only what encode sends (bool, int, float, complex) is decoded now."""
    import base64
    import io

    import numpy as np
    from numpy.lib import format as npy

    from cnncourse.testcells import wire

    for shape, descr in [((10**15,), "|V0"), ((3,), "|S4"), ((2,), [("a", "<f8")]), ((2,), "<M8[D]")]:
        buf = io.BytesIO()
        npy.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
        buf.write(bytes(np.empty(shape if shape[0] < 10 else 0, dtype=descr).nbytes))
        with pytest.raises(ValueError, match="not a wire-encoded array"):
            wire.decode({"__array__": base64.b64encode(buf.getvalue()).decode()})
    assert wire.decode(wire.encode(np.arange(3))).tolist() == [0, 1, 2]
