"""Kernel side of the hidden-test protocol: the wire encoding, hidden.check and the teaching comparisons."""
import json
import sys

import numpy as np
import pytest

from cnncourse.testcells import compare, hidden, wire


def roundtrip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value))))


def test_wire_roundtrip_keeps_types():
    arr = np.arange(6.0).reshape(2, 3)
    got = roundtrip((arr, [1, 760.0, None, "s", True], {"k": np.int64(3)}, float("inf")))
    assert type(got) is tuple and type(got[0]) is np.ndarray
    np.testing.assert_array_equal(got[0], arr)
    assert got[1] == [1, 760.0, None, "s", True]
    assert [type(v) for v in got[1][:2]] == [int, float]  # 760 and 760.0 stay distinct
    assert type(got[2]["k"]) is np.int64 and got[2]["k"] == 3
    assert got[3] == float("inf")
    assert np.isnan(roundtrip(float("nan")))


def test_wire_marks_tensors_exceptions_and_unencodable_values():
    torch = pytest.importorskip("torch")
    got = roundtrip([torch.ones(2, dtype=torch.float64), ValueError("bad stride"), print])
    assert isinstance(got[0], wire.TensorArray) and got[0].tolist() == [1.0, 1.0]
    assert got[1] == wire.RaisedError("ValueError", "bad stride")
    assert isinstance(got[2], wire.Unencodable) and "builtin" in str(got[2])


def test_wire_caps_the_size():
    with pytest.raises(ValueError, match="MB"):
        wire.encode([np.zeros(wire.MAX_BYTES // 8 + 1)])
    with pytest.raises(ValueError, match="not a wire-encoded value"):
        wire.decode({"unknown": 1})


def write_cases(folder, test, cases):
    (folder / hidden.CASES_FILE).write_text(json.dumps({"tests": {test: [wire.encode(c) for c in cases]}}))


def test_check_publishes_results_and_exceptions(tmp_path, monkeypatch, capsys):
    write_cases(tmp_path, "double", [{"args": [np.ones(2)], "kwargs": {}}, {"args": [], "kwargs": {"x": "oops"}}])
    monkeypatch.chdir(tmp_path)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))

    def double(x):
        print("student stderr", file=sys.stderr)
        if isinstance(x, str):
            raise TypeError("not a number")
        return 2 * x

    hidden.check("double", double)
    assert len(shown) == 1 and shown[0][1] is True
    answers = shown[0][0][wire.MIME]
    assert answers["test"] == "double"
    first, second = wire.decode(answers["results"])
    np.testing.assert_array_equal(first, [2.0, 2.0])
    assert second == wire.RaisedError("TypeError", "not a number")
    assert capsys.readouterr().err == ""  # the student's stderr never reaches the cell


def test_check_without_cases_file_says_hidden_tests_run_under_the_grader(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="run only when the notebook is graded"):
        hidden.check("anything", lambda: 0)
    write_cases(tmp_path, "other", [])
    with pytest.raises(RuntimeError, match="no cases for it"):
        hidden.check("anything", lambda: 0)


def test_run_cases_replaces_oversized_answers_by_errors():
    out = hidden.run_cases("big", lambda: np.zeros(wire.MAX_BYTES // 8 + 10), [{"args": [], "kwargs": {}}])
    (err,) = wire.decode(out["results"])
    assert isinstance(err, wire.RaisedError) and err.name == "ValueError"


def test_mismatch_names_wrong_entries_and_hides_expected_values_on_request():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = expected.copy()
    actual[1, 0] = 30.5
    shown = compare.mismatch(actual, expected, "out")
    assert "1 of 4 entries differ" in shown and "at (1, 0): got 30.5, expected 3" in shown
    hidden_msg = compare.mismatch(actual, expected, "out", reveal=False)
    assert "(1, 0)" in hidden_msg and "expected 3" not in hidden_msg and "relative error" not in hidden_msg
    assert compare.mismatch(expected.copy(), expected) is None
    assert "forget to `return`" in compare.mismatch(None, expected)
    assert "(out, cache)" in compare.mismatch((actual, {}), expected)
    assert "expected shape (2, 2)" in compare.mismatch(np.ones(3), expected)
    assert compare.mismatch(True, 1.0) is not None  # bool is not a number
    assert "760" not in compare.mismatch(761, 760.0, reveal=False).replace("761", "")


def test_assert_close_adds_the_hint_only_on_failure():
    compare.assert_close(np.ones(2), [1.0, 1.0], hint=lambda: pytest.fail("hint computed on success"))
    with pytest.raises(AssertionError, match="Likely cause: forgot the bias"):
        compare.assert_close(np.ones(2), np.zeros(2), hint="forgot the bias")


def test_check_gradient_accepts_a_right_gradient_and_names_a_wrong_one():
    rng = np.random.default_rng(0)
    x, df = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    assert compare.check_gradient(lambda v: v ** 2, x, df, 2 * x * df) < 1e-6
    with pytest.raises(AssertionError, match="dx: 6 of 6 entries differ"):
        compare.check_gradient(lambda v: v ** 2, x, df, x * df)
    with pytest.raises(ValueError, match="float64"):
        compare.numerical_gradient(lambda v: v, x.astype(np.float32), df)


def test_visible_rule_check_reads_the_saved_notebook(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from cnncourse.testcells import owncode
    from cnncourse.testcells.owncode import OwnCode, check_notebook

    rule = OwnCode(allowed=("math",), forbidden=("torch",))
    locked = new_code_cell("import torch  # the instructor's setup may import anything")
    locked.metadata["nbgrader"] = {"locked": True, "grade": False, "solution": False, "grade_id": "setup"}
    answer = new_code_cell("import math\ndef f(x):\n    return math.floor(x)")
    answer.metadata["nbgrader"] = {"locked": False, "grade": False, "solution": True, "grade_id": "f"}
    nbformat.write(new_notebook(cells=[locked, answer]), tmp_path / "a.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    check_notebook("a.ipynb", rule)  # the locked cell is not the student's
    hits = owncode._saved_problems.cache_info().hits
    check_notebook("a.ipynb", rule)  # the next test cell: the unchanged file is not parsed again
    assert owncode._saved_problems.cache_info().hits == hits + 1
    nbformat.write(new_notebook(cells=[locked, answer, new_code_cell("from torch import nn")]), tmp_path / "a.ipynb")
    with pytest.raises(AssertionError, match=r"line 1 `from torch import nn`: `import torch` is not allowed"):
        check_notebook("a.ipynb", rule)
    with pytest.raises(AssertionError, match="save it"):
        check_notebook("missing.ipynb", rule)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    check_notebook("missing.ipynb", rule)  # under the grader, which applies the rule itself


def test_assert_close_messages_teach(capsys):
    torch = pytest.importorskip("torch")
    expected = np.arange(24.0).reshape(2, 3, 4)
    with pytest.raises(AssertionError, match=r"out: expected shape \(2, 3, 4\), got shape \(2, 4, 3\)"):
        compare.assert_close(expected.transpose(0, 2, 1), expected, "out")
    wrong = expected.copy()
    wrong[1, 2, 3] += 1.0
    wrong[0, 0, 1] *= 2
    with pytest.raises(AssertionError) as info:
        compare.assert_close(wrong, expected, "dx")
    msg = str(info.value)
    assert "dx: 2 of 24 entries differ" in msg and "max relative error 1" in msg
    assert "at (0, 0, 1): got 2, expected 1" in msg and "at (1, 2, 3): got 24, expected 23" in msg
    with pytest.raises(AssertionError, match=r"and 19 more"):
        compare.assert_close(expected + 1, expected)
    compare.assert_close(expected.copy(), torch.from_numpy(expected))  # tensors and lists are fine as expected
    compare.assert_close(np.array([1.0, 2.0]), [1.0, 2.0])
    with pytest.raises(AssertionError, match="torch tensor"):
        compare.assert_close(torch.from_numpy(expected), expected)  # answers must be numpy arrays
    assert capsys.readouterr() == ("", "")


def test_numerical_gradient_restores_its_input():
    rng = np.random.default_rng(0)
    x, df = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    before = x.copy()
    np.testing.assert_allclose(compare.numerical_gradient(lambda a: a ** 3, x, df), 3 * x ** 2 * df, rtol=1e-7)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="C-contiguous"):
        compare.numerical_gradient(lambda a: a, np.asfortranarray(rng.standard_normal((3, 4))), df)
