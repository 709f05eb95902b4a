"""Grader side of the hidden-test protocol without a kernel: secrets and seeds, oracle files, PlaceCases and
CheckAnswers on notebooks whose outputs are planted, and the own-code rule."""
import json
import os
import stat

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from cnncourse.grader import hidden as grader_hidden
from cnncourse.grader.cases import hidden_tests_in, load_oracle, student_cases
from cnncourse.grader.secret import ENV_VAR, course_secret, secret_path, student_seed
from cnncourse.testcells import hidden, wire
from cnncourse.testcells.owncode import OwnCode, problems, student_cells

ORACLE = '''
from cnncourse.grader.cases import Test
from cnncourse.testcells.owncode import OwnCode

RULES = OwnCode(allowed=("math",), forbidden=("torch",))


def _cases(rng):
    return [{"args": [int(rng.integers(1, 1000))], "kwargs": {}} for _ in range(5)]


def _check(case, got):
    if type(got) is not int:
        return f"square({case['args'][0]}) returned a {type(got).__name__}: return an int"
    if got != case["args"][0] ** 2:
        hint = "\\nLikely cause: that is twice the number" if got == 2 * case["args"][0] else ""
        return f"square({case['args'][0]}) returned {got}, which is wrong" + hint
    return None


TESTS = {"square": Test(cases=_cases, check=_check)}
'''
TEST_SOURCE = 'assert square(3) == 9\n### BEGIN HIDDEN TESTS\nhidden.check("square", square)\n### END HIDDEN TESTS'


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course with one assignment 'sq' whose oracle squares numbers; CNNCOURSE_SECRET set."""
    monkeypatch.setenv(ENV_VAR, "unit-test-secret")
    folder = tmp_path / "solutions" / "sq"
    folder.mkdir(parents=True)
    (folder / "oracle.py").write_text(ORACLE)
    nbformat.write(notebook("x * x"), folder / "sq.ipynb")
    return tmp_path


def notebook(body: str, extra_cells=()) -> nbformat.NotebookNode:
    solution = new_code_cell(f"def square(x):\n    {'return ' if 'return' not in body else ''}{body}")
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "square",
                                     "schema_version": 3}
    test = new_code_cell(TEST_SOURCE)
    test.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True, "grade_id": "test_square",
                                 "points": 2, "schema_version": 3}
    return new_notebook(cells=[*extra_cells, solution, test])


def resources_for(course, student="alice", folder=None):
    folder = folder or course / "autograded" / student / "sq"
    folder.mkdir(parents=True, exist_ok=True)
    return {"metadata": {"path": str(folder)}, "nbgrader": {"assignment": "sq", "student": student, "notebook": "sq"}}


def run_place(course, nb, resources):
    pre = grader_hidden.PlaceCases(course_root=str(course))
    return pre.preprocess(nb, resources)


def kernel_answers(folder, fn):
    """What hidden.check publishes in the kernel for ``fn``, read from the placed cases file."""
    return hidden.run_cases("square", fn, hidden.load_cases("square", folder))


def grade(course, nb, fn, student="alice", extra_outputs=()):
    resources = resources_for(course, student)
    nb, resources = run_place(course, nb, resources)
    folder = resources["metadata"]["path"]
    test = nb.cells[-1]
    test.outputs = [*extra_outputs, new_output("display_data", data={wire.MIME: kernel_answers(folder, fn)})]
    nb, resources = grader_hidden.CheckAnswers(course_root=str(course)).preprocess(nb, resources)
    assert not os.path.exists(os.path.join(folder, hidden.CASES_FILE)), "the cases file must be deleted"
    return test, resources["cnncourse"]["tests"]["test_square"]


def test_secret_from_env_or_a_private_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, "from-env")
    assert course_secret(tmp_path) == b"from-env" and not secret_path(tmp_path).exists()
    monkeypatch.delenv(ENV_VAR)
    first = course_secret(tmp_path)
    assert "created the course secret" in capsys.readouterr().err
    assert stat.S_IMODE(secret_path(tmp_path).stat().st_mode) == 0o600 and len(first) == 64
    assert course_secret(tmp_path) == first  # kept, not regenerated


def test_workers_starting_together_share_one_secret(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv(ENV_VAR, raising=False)
    with ThreadPoolExecutor(8) as pool:
        got = set(pool.map(lambda _: course_secret(tmp_path), range(32)))
    assert len(got) == 1 and [p.name for p in secret_path(tmp_path).parent.iterdir()] == ["secret"]


def test_seeds_are_stable_per_student_and_differ_between_students_and_tests():
    seed = student_seed(b"s", "a1", "alice", "t")
    assert seed == student_seed(b"s", "a1", "alice", "t")
    assert len({seed, student_seed(b"s", "a1", "bob", "t"), student_seed(b"s", "a1", "alice", "u"),
                student_seed(b"other", "a1", "alice", "t")}) == 4


def test_hidden_tests_in_finds_the_checks_in_order():
    source = 'x = 1\nhidden.check("b", f)\nif x:\n    hidden.check("a", g)\nother.check("c", h)'
    assert hidden_tests_in(source) == ["b", "a"]
    assert hidden_tests_in("not python (") == []


def test_place_cases_writes_per_student_inputs_only(course):
    oracle = load_oracle(course, "sq")
    alice, bob = (student_cases(oracle, "square", s, course) for s in ("alice", "bob"))
    assert alice == student_cases(oracle, "square", "alice", course) and alice != bob
    resources = resources_for(course)
    stale = os.path.join(resources["metadata"]["path"], hidden.CASES_FILE)
    with open(stale, "w") as f:
        f.write('{"tests": {"square": []}}')  # a cases file shipped with the submission is replaced
    run_place(course, notebook("x * x"), resources)
    placed = json.loads(open(stale).read())
    assert set(placed["tests"]) == {"square"}
    assert [wire.decode(c) for c in placed["tests"]["square"]] == alice


def test_place_cases_sends_only_the_call_inputs_to_the_kernel(course):
    """Keys of a case other than args/kwargs (labels kept for the check) never reach the kernel's file."""
    oracle_file = course / "solutions" / "sq" / "oracle.py"
    oracle_file.write_text(ORACLE.replace('"kwargs": {}}', '"kwargs": {}, "label": 12345}'))
    resources = resources_for(course)
    run_place(course, notebook("x * x"), resources)
    placed = json.loads(open(os.path.join(resources["metadata"]["path"], hidden.CASES_FILE)).read())
    sent = [wire.decode(c) for c in placed["tests"]["square"]]
    assert sent and all(set(c) == {"args", "kwargs"} for c in sent)
    assert "12345" not in json.dumps(placed)
    assert all(case["label"] == 12345 for case in student_cases(load_oracle(course, "sq"), "square", "alice", course))


def test_check_answers_passes_right_answers_and_removes_them(course):
    cell, record = grade(course, notebook("x * x"), lambda x: x * x)
    assert cell.outputs == [] and record == {"passed": True, "message": "", "hint": None}


def test_a_wrong_answer_fails_the_cell_with_a_hint_but_never_the_expected_value(course):
    cell, record = grade(course, notebook("2 * x"), lambda x: 2 * x)
    (error,) = cell.outputs
    assert error.output_type == "error" and error.ename == grader_hidden.FAILED
    assert "5 of 5 cases wrong" in error.evalue and record["hint"] == "that is twice the number"
    cases = student_cases(load_oracle(course, "sq"), "square", "alice", course)
    assert not any(str(c["args"][0] ** 2) in error.evalue for c in cases)


def test_missing_duplicated_or_forged_answers_fail(course):
    forged = new_output("display_data", data={wire.MIME: {"test": "square", "results": []}})
    cell, record = grade(course, notebook("x * x"), lambda x: x * x, extra_outputs=[forged])
    assert "published 2 times" in cell.outputs[-1].evalue and not record["passed"]
    resources = resources_for(course, "carol")
    nb, resources = run_place(course, notebook("x * x"), resources)
    nb, resources = grader_hidden.CheckAnswers(course_root=str(course)).preprocess(nb, resources)
    assert "no answers came back" in nb.cells[-1].outputs[-1].evalue


def test_oversized_answers_are_refused(course):
    huge = {"test": "square", "results": ["x" * (2 * wire.MAX_BYTES + 1)]}
    resources = resources_for(course)
    nb, resources = run_place(course, notebook("x * x"), resources)
    nb.cells[-1].outputs = [new_output("display_data", data={wire.MIME: huge})]
    nb, resources = grader_hidden.CheckAnswers(course_root=str(course)).preprocess(nb, resources)
    assert "too large" in nb.cells[-1].outputs[-1].evalue


def test_an_earlier_error_in_the_cell_is_kept_and_recorded(course):
    resources = resources_for(course)
    nb, resources = run_place(course, notebook("x * x"), resources)
    nb.cells[-1].outputs = [new_output("error", ename="AssertionError", evalue="square(3) should be 9\n"
                                       "Likely cause: forgot to multiply", traceback=[])]
    nb, resources = grader_hidden.CheckAnswers(course_root=str(course)).preprocess(nb, resources)
    assert [o.ename for o in nb.cells[-1].outputs] == ["AssertionError"]
    assert resources["cnncourse"]["tests"]["test_square"]["hint"] == "forgot to multiply"


def test_breaking_the_own_code_rule_gives_no_hidden_points(course):
    sneaky = new_code_cell("import torch as t")  # a cell the student added
    cell, record = grade(course, notebook("x * x", [sneaky]), lambda x: x * x)
    assert cell.outputs[-1].ename == grader_hidden.FAILED and "`import torch` is not allowed" in record["message"]
    disguised = new_code_cell("import torch")  # claims to be a locked cell the source notebook does not have
    disguised.metadata["nbgrader"] = {"locked": True, "grade": False, "solution": False, "grade_id": "fake"}
    cell, record = grade(course, notebook("x * x", [disguised]), lambda x: x * x)
    assert not record["passed"]


@pytest.mark.parametrize("source, found", [
    ("import math\ndef f(x):\n    return math.floor(x)", ""),
    ("import numpy as np", "`import numpy`"),
    ("from torch import nn", "`import torch`"),
    ("def f():\n    return __import__('torch')", "`__import__`"),
    ("def f():\n    return globals()['x']", "`globals`"),
    ("import gc", "`import gc`"),
    ("def f(e):\n    return e.__traceback__.tb_frame.f_back.f_locals", ".f_back"),
    ("def f(m):\n    return getattr(m, 'mod' + 'ules')", "`getattr`"),
    ("%timeit f(1)", "magics"),
    ("y = torch.zeros(3)", "uses `torch`"),
    ("def broken(:", ""),  # not valid Python: it runs nothing
    ("def f(model):\n    return list(model.modules())", ""),  # an everyday torch idiom stays allowed
    ("import math\ndef f():\n    return math.sys", "`.sys`"),  # sys.modules reached through another module
])
def test_own_code_rule(source, found):
    rule = OwnCode(allowed=("math",), forbidden=("torch", "cnncourse"))
    got = problems([source], rule)
    assert (found in " ".join(got)) and bool(got) == bool(found), got


def test_student_cells_skip_only_trusted_locked_cells():
    nb = notebook("x * x", [new_code_cell("import torch")])
    assert len(student_cells(nb)) == 2
    assert len(student_cells(nb, trusted_ids={"test_square"})) == 2
    assert len(student_cells(nb, trusted_ids=set())) == 3
