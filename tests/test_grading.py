"""cnncourse.grading: messages that teach, silence on success, and a checker that monkeypatching cannot fool."""
import builtins
import dis
import math

import numpy as np
import pytest
import torch

from cnncourse import grading
from cnncourse.grading import (assert_close, check_gradient, numerical_gradient, random_conv_case,
                               random_pool_case, sealed_checker)


def _codes(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from _codes(const)


def test_sealed_checker_reads_no_globals_at_call_time():
    # Every name the methods use is a local or a closure cell captured at creation, never a module global
    # or a builtin looked up when a hidden test runs (those a submission could have replaced).
    nested = [c for c in _codes(sealed_checker.__code__)][1:]
    assert {c.co_name for c in nested} >= {"equal", "close", "own", "_foreign", "_describe", "_wrong_type"}
    for code in nested:
        loads = [i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
        assert loads == [], f"{code.co_name} reads globals {loads}"


def _always_true(*args, **kwargs):
    return True


def test_sealed_checker_ignores_later_monkeypatching(monkeypatch):
    check = sealed_checker()
    expected, wrong = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    for module, names in [(np, ["absolute", "subtract", "less_equal", "logical_not", "allclose", "max", "sum"]),
                          (np.testing, ["assert_allclose", "assert_array_equal"]), (math, ["isclose", "fabs", "isnan"])]:
        for name in names:
            monkeypatch.setattr(module, name, _always_true)
    monkeypatch.setattr(grading, "sealed_checker", _always_true)
    monkeypatch.setattr(grading, "assert_close", _always_true)
    # Builtins by hand: pytest itself needs them, so they are replaced only around the three calls.
    names = ["len", "type", "float", "int", "min", "range", "abs", "isinstance"]
    saved = {name: getattr(builtins, name) for name in names}
    errors = []
    try:
        for name in names:
            setattr(builtins, name, _always_true)
        for call in (lambda: check.close(wrong, expected, "out"), lambda: check.close(2.0, 1.5, "value"),
                     lambda: check.equal(4, 3, "size")):
            try:
                call()
                errors.append(None)
            except AssertionError as exc:
                errors.append(exc)
    finally:
        for name, value in saved.items():
            setattr(builtins, name, value)
    monkeypatch.undo()
    assert [str(e).splitlines()[0] if e else None for e in errors] == [
        "out: 5 of 6 entries differ (max relative error 1; tolerance atol=1e-08 + rtol=1e-06 * |expected|)",
        "value: expected 1.5, got 2.0 (tolerance atol=1e-08 + rtol=1e-06 * |expected|)",
        "size: expected 3, got 4"]
    check.close(expected.copy(), expected, "out")


def test_sealed_checker_rejects_rigged_objects_and_wrong_types():
    check = sealed_checker()
    x = np.arange(4.0)

    class Always(np.ndarray):
        def __eq__(self, other):
            return True

    class Int(int):
        def __eq__(self, other):
            return True

    with pytest.raises(AssertionError, match="type Always"):
        check.close(x.view(Always), x)
    with pytest.raises(AssertionError, match="type Int"):
        check.equal(Int(5), 3)
    with pytest.raises(AssertionError, match="type bool"):
        check.equal(True, 1)
    with pytest.raises(AssertionError, match="dtype object"):
        check.close(x.astype(object), x)
    with pytest.raises(AssertionError, match="a tuple of length 2"):
        check.equal([1, 2], (1, 2))
    with pytest.raises(AttributeError, match="cannot be modified"):
        check.close = lambda *a, **k: None
    with pytest.raises(AttributeError, match="cannot be modified"):
        del check.equal
    with pytest.raises(AssertionError):
        check.close(np.array([np.nan]), np.array([np.nan]))  # NaN is never correct
    check.equal(np.int64(3), 3)
    check.equal((2, (3, 4)), (2, (3, 4)))
    check.close(np.float64(0.1 + 0.2), 0.3)
    check.close(x.astype(np.float32), x)


def test_messages_teach(capsys):
    expected = np.arange(24.0).reshape(2, 3, 4)
    with pytest.raises(AssertionError, match=r"out: expected shape \(2, 3, 4\), got shape \(2, 4, 3\)"):
        assert_close(expected.transpose(0, 2, 1), expected, "out")
    with pytest.raises(AssertionError, match="forget to `return`"):
        assert_close(None, expected)
    with pytest.raises(AssertionError, match=r"returns \(out, cache\): unpack it"):
        assert_close((expected, {}), expected)
    wrong = expected.copy()
    wrong[1, 2, 3] += 1.0
    wrong[0, 0, 1] *= 2
    with pytest.raises(AssertionError) as info:
        assert_close(wrong, expected, "dx")
    msg = str(info.value)
    assert "dx: 2 of 24 entries differ" in msg and "max relative error 1" in msg
    assert "at (0, 0, 1): got 2, expected 1" in msg and "at (1, 2, 3): got 24, expected 23" in msg
    many = expected + 1
    with pytest.raises(AssertionError, match=r"and 19 more"):
        assert_close(many, expected)
    assert_close(expected.copy(), torch.from_numpy(expected))  # tensors and lists are fine as expected values
    assert_close(np.array([1.0, 2.0]), [1.0, 2.0])
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_numerical_gradient_and_check_gradient():
    rng = np.random.default_rng(0)
    x, df = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda a: a ** 3, x, df)
    np.testing.assert_allclose(grad, 3 * x ** 2 * df, rtol=1e-7)
    np.testing.assert_array_equal(x, before)  # restored after the perturbations
    err = check_gradient(lambda a: a ** 3, x, df, 3 * x ** 2 * df, "dx")
    assert err < 1e-7
    with pytest.raises(AssertionError, match="(?s)dx: .* differ.*numerical gradient"):
        check_gradient(lambda a: a ** 3, x, df, 2 * x ** 2 * df, "dx")
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda a: a, x.astype(np.float32), df)


def test_random_cases_are_deterministic_and_tile():
    a, b = random_conv_case(7), random_conv_case(7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.dx, b.dx)
    for seed in range(40):
        case = random_conv_case(seed, pairs=True)
        (N, C, H, W), (F, C2, HH, WW) = case.x.shape, case.w.shape
        s, p = case.conv_param["stride"], case.conv_param["pad"]
        sh, sw = (s, s) if isinstance(s, int) else s
        ph, pw = (p, p) if isinstance(p, int) else p
        assert C == C2 and (H + 2 * ph - HH) % sh == 0 and (W + 2 * pw - WW) % sw == 0
        assert case.out.shape == (N, F, (H + 2 * ph - HH) // sh + 1, (W + 2 * pw - WW) // sw + 1)
        assert case.dx.shape == case.x.shape and case.dw.shape == case.w.shape and case.db.shape == (F,)
        assert case.x.dtype == case.out.dtype == np.float64
    fixed = random_conv_case(0, N=2, C=3, F=5, kernel=(3, 2), stride=2, pad=1)
    assert fixed.w.shape == (5, 3, 3, 2) and fixed.conv_param == {"stride": 2, "pad": 1}
    pool = random_pool_case(3, "avg", pool=2, stride=2)
    assert pool.pool_param == {"pool_height": 2, "pool_width": 2, "stride": 2}
    assert "avg" in repr(pool) and "ConvCase" in repr(fixed)
    with pytest.raises(ValueError, match="kind"):
        random_pool_case(0, "min")


def test_own_rejects_delegating_to_the_reference_or_torch():
    check = sealed_checker()
    namespace = {"__name__": "__main__"}
    exec(  # functions as a notebook defines them (module __main__)
        "import numpy as np\n"
        "import torch\n"
        "import cnncourse.layers as layers\n"
        "from cnncourse.layers import check_conv_args as ref\n"
        "def helper(x):\n    return np.pad(x, 1)\n"
        "def good(x):\n    return helper(x) + np.sum(x)\n"
        "def nested(x):\n    f = lambda y: [np.abs(v) for v in y]\n    return f(x)\n"
        "def via_module(x):\n    return layers.pad(x, 1)\n"
        "def via_alias(x):\n    return ref(x)\n"
        "def via_helper(x):\n    return via_alias(x)\n"
        "def via_torch(x):\n    return torch.nn.functional.pad(x, (1, 1))\n"
        "def via_import(x):\n    return __import__('cnncourse').layers.pad(x, 1)\n"
        "def via_lambda(x):\n    g = lambda: ref(x)\n    return g()\n"
        "def local_import(x):\n    from cnncourse.layers import pad as p\n    return p(x, 1)\n",
        namespace)
    check.own(namespace["good"], "good")
    check.own(namespace["nested"], "nested")
    for name, words in [("via_module", "uses `layers`"), ("via_alias", "`ref` from cnncourse.layers"),
                        ("via_helper", "`ref` from cnncourse.layers"), ("via_torch", "uses `torch`"),
                        ("via_import", "uses `__import__`"), ("via_lambda", "`ref` from cnncourse.layers"),
                        ("local_import", "uses `cnncourse.layers`")]:
        with pytest.raises(AssertionError, match=words):
            check.own(namespace[name], name)
    from cnncourse.layers import check_conv_args
    with pytest.raises(AssertionError, match="must be written in this notebook"):
        check.own(check_conv_args, "check_conv_args")
    with pytest.raises(AssertionError, match="must be a function"):
        check.own(None, "pad")
