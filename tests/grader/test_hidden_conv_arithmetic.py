"""conv_arithmetic's hidden tests through real ``nbgrader autograde`` (and ``generate_feedback``).

One grading run of a small class: honest submissions (full marks, per-student inputs that differ between two
students and stay the same when one is graded again), a submission with typical mistakes (partial credit,
the right hints), and the lookups that beat the old design — globals, caller frames, ``gc.get_objects()``,
cells above or below the setup cell, IPython hooks, overwritten helpers — which now earn no hidden points.
A spy that dumps every integer reachable in the kernel during the hidden tests finds none of its expected
answers: they exist only in the grader.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from helpers import autograde_notebooks, autograded, cell_index, run_nbgrader, scores
from solution_modules import load_solution_module

from cnncourse.grader.cases import load_oracle, student_cases
from cnncourse.grader.hidden import FAILED

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "conv_arithmetic"
SOURCE = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
pytestmark = pytest.mark.xdist_group("hidden_conv_arithmetic")  # the class is graded once, on one worker

RF_MEMO = '''_SEEN = {((3, 1, 1),): 3, ((3, 1, 1),) * 2: 5, ((3, 1, 1),) * 3: 7, ((2, 2, 1), (3, 1, 1)): 6,
         ((3, 1, 1), (3, 1, 2), (3, 1, 4)): 15}


def receptive_field(layers):
    key = tuple(tuple(layer) for layer in layers)
    if key in _SEEN:  # the visible examples pass ...
        return _SEEN[key]
'''  # ... and everything else is looked up in the kernel
LOOKUP_FRAMES = '''    import sys
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict) and "want" in value:
                return value["want"]
        frame = frame.f_back
    return 0
'''
LOOKUP_GC = '''    import gc
    for obj in gc.get_objects():
        if isinstance(obj, dict) and ("want" in obj or "expected" in obj):
            return obj.get("want", obj.get("expected"))
    return 0
'''
LOOKUP_GLOBALS = '''    for name, value in list(globals().items()):
        if name.startswith("_") and type(value) is int:
            return value
    return 0
'''
FORGE_ABOVE_SETUP = '''import cnncourse.testcells.hidden as _h
from IPython.display import display


def _forged(test, fn):
    display({"application/vnd.cnncourse.answers+json": {"test": test, "results": [0] * 50}}, raw=True)


_h.check = _forged
'''
QUIET = '''class _Quiet:
    def check(self, test, fn):
        return None


hidden = _Quiet()
'''
HOOK = QUIET + '''

def _rebind(*args):
    globals()["hidden"] = _Quiet()


get_ipython().events.register("pre_run_cell", _rebind)
'''
NEUTERED = '''def assert_equal(*args, **kwargs):
    return None


def assert_raises(*args, **kwargs):
    return None


def check_rules():
    return None
'''
SPY = '''def network_table(layers, input_shape):
    import gc
    import sys
    found = set()
    for obj in gc.get_objects():
        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
        found.update(v for v in list(values) if type(v) is int and v > 10_000)
    frame = sys._getframe()
    while frame is not None:
        found.update(v for v in frame.f_locals.values() if type(v) is int and v > 10_000)
        frame = frame.f_back
    print("SPY", sorted(found))
    return []
'''
RECORDER = 'print("CASES", open(".cnncourse_cases.json").read())\nprint("\\n".join(In))'
MISTAKES = {
    "receptive_field": '''def receptive_field(layers):
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        jump *= stride
        rf += dilation * (kernel - 1) * jump
    return rf''',
    "transposed_conv_output_size": '''def transposed_conv_output_size(n, kernel, stride=1, padding=0, output_padding=0):
    return (n - 1) * stride - 2 * padding + kernel''',
    "same_padding": '''def same_padding(kernel, dilation=1):
    if kernel % 2 == 0:
        raise ValueError("an even kernel has no centre")
    return dilation * (kernel - 1) // 2''',
}


def submission(answers: dict[str, str] | None = None, insert: dict[str, str] | None = None, append: str = ""):
    """The reference notebook with some answer cells replaced, student cells inserted after (or, with a
    key "above:<id>", before) a cell, and one appended at the end."""
    nb = nbformat.read(SOURCE, as_version=4)
    for grade_id, source in (answers or {}).items():
        nb.cells[cell_index(nb, grade_id)].source = source
    for where, source in (insert or {}).items():
        above, _, grade_id = where.rpartition(":")
        nb.cells.insert(cell_index(nb, grade_id) + (0 if above else 1), nbformat.v4.new_code_cell(source))
    if append:
        nb.cells.append(nbformat.v4.new_code_cell(append))
    return nb


SUBMISSIONS = {
    "alice": lambda: submission(append=RECORDER),
    "bob": lambda: submission(append=RECORDER),
    "mistakes": lambda: submission(MISTAKES),
    "frames": lambda: submission({"receptive_field": RF_MEMO + LOOKUP_FRAMES}),
    "gc": lambda: submission({"receptive_field": RF_MEMO + LOOKUP_GC}),
    "above_setup": lambda: submission({"receptive_field": RF_MEMO + LOOKUP_GLOBALS},
                                      insert={"above:setup": FORGE_ABOVE_SETUP}),
    "below_setup": lambda: submission(insert={"setup": QUIET}),
    "hooks": lambda: submission(insert={"setup": HOOK}),
    "helpers": lambda: submission({"receptive_field": RF_MEMO + "    return 0"}, insert={"setup": NEUTERED}),
    "spy_a": lambda: submission({"network_table": SPY + "\n\ndef largest_layers(table):\n    return ('', '')"}),
    "spy_b": lambda: submission({"network_table": SPY + "\n\ndef largest_layers(table):\n    return ('', '')"}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(course root, {student: (score, max)}, {student: autograded notebook}) after one autograde run."""
    root, marks, _ = autograde_notebooks(ROOT, ASSIGNMENT, tmp_path_factory.mktemp("hidden"),
                                         {student: build() for student, build in SUBMISSIONS.items()})
    return root, marks, {s: autograded(root, ASSIGNMENT, s) for s in SUBMISSIONS}


def errors(nb, grade_id):
    return [o for o in nb.cells[cell_index(nb, grade_id)].outputs if o.output_type == "error"]


def text_of(nb, index=-1):
    return "".join(o.get("text", "") for o in nb.cells[index].outputs if o.output_type == "stream")


@pytest.mark.slow
def test_honest_submissions_get_full_marks_and_their_own_inputs(graded):
    root, marks, notebooks = graded
    full = marks["alice"][1]
    assert marks["alice"] == marks["bob"] == (full, full)
    cases = {s: re.search(r"CASES (.*)", text_of(notebooks[s])).group(1) for s in ("alice", "bob")}
    assert json.loads(cases["alice"])["tests"] != json.loads(cases["bob"])["tests"]
    oracle = load_oracle(root, ASSIGNMENT)
    placed = json.loads(cases["alice"])["tests"]
    assert set(placed) == set(oracle.tests)
    assert not list((root / "autograded").rglob(".cnncourse_cases.json")), "cases files must be deleted"
    assert not [o for nb in notebooks.values() for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if "application/vnd.cnncourse.answers+json" in o.get("data", {})], "answers must be removed"
    # graded again, alice gets exactly the same inputs
    run_nbgrader(root, "autograde", ASSIGNMENT, "--student", "alice", "--force")
    again = re.search(r"CASES (.*)", text_of(autograded(root, ASSIGNMENT, "alice"))).group(1)
    assert again == cases["alice"] and scores(root, ASSIGNMENT)["alice"] == (full, full)


@pytest.mark.slow
def test_typical_mistakes_get_partial_credit_and_the_right_hints(graded):
    _, marks, notebooks = graded
    nb = notebooks["mistakes"]
    lost = {g: nb.cells[cell_index(nb, g)].metadata["nbgrader"]["points"]
            for g in ("test_receptive_field", "test_transposed_conv_output_size", "test_same_padding")}
    score, full = marks["mistakes"]
    assert score == full - sum(lost.values()) and score > 0
    (rf,) = errors(nb, "test_receptive_field")
    assert "Likely cause: a layer's growth is scaled by the strides of the layers BEFORE it" in rf.evalue
    (transposed,) = errors(nb, "test_transposed_conv_output_size")
    assert "Likely cause: output_padding adds pixels to the output" in transposed.evalue
    (same,) = errors(nb, "test_same_padding")  # passes the visible examples, fails a hidden case
    assert same.ename == FAILED and "with an even dilation an even kernel covers an odd number" in same.evalue


@pytest.mark.slow
@pytest.mark.parametrize("student", ["frames", "gc", "above_setup", "hooks"])
def test_lookups_that_break_the_rules_earn_nothing(graded, student):
    _, marks, notebooks = graded
    assert marks[student][0] == 0
    (error,) = errors(notebooks[student], "test_receptive_field")
    # the visible rule check (on the saved notebook, where the kernel sees it) or the grader's says why
    assert error.ename in ("AssertionError", FAILED) and "is not allowed" in error.evalue


@pytest.mark.slow
def test_a_fake_hidden_module_below_the_setup_cell_earns_no_hidden_points(graded):
    _, marks, notebooks = graded
    assert marks["below_setup"][0] == 0
    for cell in notebooks["below_setup"].cells:
        if cell.metadata.get("nbgrader", {}).get("points"):
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename == FAILED and "no answers came back" in error.evalue


@pytest.mark.slow
def test_overwritten_helpers_pass_visible_checks_but_not_the_hidden_test(graded):
    _, marks, notebooks = graded
    nb = notebooks["helpers"]
    points = nb.cells[cell_index(nb, "test_receptive_field")].metadata["nbgrader"]["points"]
    assert marks["helpers"][0] == marks["helpers"][1] - points
    (error,) = errors(nb, "test_receptive_field")
    assert error.ename == FAILED and "cases wrong" in error.evalue


@pytest.mark.slow
def test_nothing_in_the_kernel_holds_an_expected_answer(graded):
    """The spy sees every integer in the kernel while its network_table is tested; none of the parameter or
    MAC counts the grader expects for its networks is there (a count seen by both spies is a constant)."""
    root, marks, notebooks = graded
    oracle = load_oracle(root, ASSIGNMENT)
    seen = {}
    for student in ("spy_a", "spy_b"):
        nb = notebooks[student]
        text = text_of(nb, cell_index(nb, "test_network_table"))
        seen[student] = {int(v) for line in re.findall(r"SPY \[(.*)\]", text) for v in line.split(",") if v.strip()}
        assert seen[student], "the spy saw nothing: the test did not run"
        assert marks[student][0] < marks[student][1]
    module = load_solution_module("conv_arithmetic/oracle_network.py")
    for student, other in (("spy_a", "spy_b"), ("spy_b", "spy_a")):
        expected = {n for case in student_cases(oracle, "network_table", student, root)
                    for _, _, params, macs in module.network_rows(*case["args"]) for n in (params, macs) if n > 10_000}
        assert expected, "the networks are too small for the check"
        assert not (expected & seen[student]) - seen[other]


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests(graded):
    root, _, _ = graded
    run_nbgrader(root, "generate_feedback", ASSIGNMENT, "--student", "alice", "--force")
    html = next((root / "feedback" / "alice" / ASSIGNMENT).glob("*.html")).read_text()
    assert "hidden.check(" not in html and "BEGIN HIDDEN TESTS" not in html
    assert "receptive_field" in html  # the student's own code and the visible tests are there
    shutil.rmtree(root / "feedback")
