"""cnncourse.layers against the torch.nn.functional oracle (forward and autograd backward, float64)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnncourse import layers as L
from cnncourse.grading import random_conv_case, random_pool_case

CASES = 200


def rel_error(actual, expected):
    """Max relative error, with |expected| floored at 1 so entries near 0 do not blow it up."""
    return float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))))


@pytest.fixture(scope="module")
def conv_cases():
    # int and (h, w) strides/pads, non-square images and kernels; built once for both implementations
    return [random_conv_case(seed, pairs=seed % 3 == 0) for seed in range(CASES)]


@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_conv_matches_torch_on_random_cases(impl, conv_cases):
    forward, backward = getattr(L, f"conv_forward_{impl}"), getattr(L, f"conv_backward_{impl}")
    worst = 0.0
    for case in conv_cases:
        out, cache = forward(case.x, case.w, case.b, case.conv_param)
        dx, dw, db = backward(case.dout, cache)
        for name, got, want in [("out", out, case.out), ("dx", dx, case.dx), ("dw", dw, case.dw), ("db", db, case.db)]:
            assert got.shape == want.shape, f"{case}: {name} shape {got.shape} != {want.shape}"
            err = rel_error(got, want)
            assert err < 1e-8, f"{case}: {name} max relative error {err:.2e}"
            worst = max(worst, err)
    print(f"conv {impl}: max relative error vs torch over {CASES} cases: {worst:.2e}")


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_torch_on_random_cases(kind):
    forward, backward = getattr(L, f"{kind}_pool_forward_naive"), getattr(L, f"{kind}_pool_backward_naive")
    worst = 0.0
    for seed in range(CASES):
        case = random_pool_case(seed, kind)
        out, cache = forward(case.x, case.pool_param)
        dx = backward(case.dout, cache)
        errors = rel_error(out, case.out), rel_error(dx, case.dx)
        assert max(errors) < 1e-8, (case, errors)
        worst = max(worst, *errors)
    print(f"{kind} pool: max relative error vs torch over {CASES} cases: {worst:.2e}")


def test_benchmark_shape_im2col_equals_naive_and_torch():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    p = {"stride": 1, "pad": 1}
    naive, _ = L.conv_forward_naive(x, w, b, p)
    fast, _ = L.conv_forward_im2col(x, w, b, p)
    ref = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), padding=1).numpy()
    assert fast.shape == (2, 4, 8, 8) and fast.flags.c_contiguous
    assert rel_error(naive, ref) < 1e-12 and rel_error(fast, ref) < 1e-12


def test_float32_stays_float32():
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(1, 2, 5, 5), (3, 2, 3, 3), (3,)])
    for forward in (L.conv_forward_naive, L.conv_forward_im2col):
        out, _ = forward(x, w, b, {"stride": 2, "pad": 1})
        assert out.dtype == np.float32


@pytest.mark.parametrize("mode,torch_mode", [("constant", "constant"), ("reflect", "reflect"),
                                             ("replicate", "replicate"), ("circular", "circular")])
def test_pad_modes_match_torch(mode, torch_mode):
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    got = L.pad(x, (1, 2), mode=mode)
    want = F.pad(torch.from_numpy(x), (2, 2, 1, 1), mode=torch_mode).numpy()
    assert got.shape == (2, 3, 6, 9)
    np.testing.assert_array_equal(got, want)
    assert L.pad(x, 0).shape == x.shape


def test_max_pool_ties_route_to_first_max_like_torch():
    x = np.ones((1, 1, 4, 4))
    out, cache = L.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = L.max_pool_backward_naive(np.ones_like(out), cache)
    tx = torch.ones(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    F.max_pool2d(tx, 2, 2).sum().backward()
    np.testing.assert_array_equal(dx, tx.grad.numpy())


def _conv_error(x_shape=(1, 3, 5, 5), w_shape=(2, 3, 3, 3), b_shape=(2,), conv_param=None):
    conv_param = {"stride": 1, "pad": 0} if conv_param is None else conv_param
    with pytest.raises(ValueError) as info:
        L.conv_forward_naive(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape), conv_param)
    with pytest.raises(ValueError) as info2:
        L.conv_forward_im2col(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape), conv_param)
    assert str(info.value) == str(info2.value)
    return str(info.value)


def test_invalid_configurations_raise_value_error_naming_the_mismatch():
    assert "channels of x and w differ" in _conv_error(x_shape=(1, 2, 5, 5))
    assert "C=2" in _conv_error(x_shape=(1, 2, 5, 5))
    assert "does not tile" in _conv_error(x_shape=(1, 3, 6, 6), conv_param={"stride": 2, "pad": 0})
    assert "b must have shape (F,)" in _conv_error(b_shape=(3,))
    assert "stride must be >= 1" in _conv_error(conv_param={"stride": 0, "pad": 0})
    assert "missing ['pad']" in _conv_error(conv_param={"stride": 1})
    assert "4-d" in _conv_error(x_shape=(3, 5, 5))
    with pytest.raises(ValueError, match="does not tile"):
        L.max_pool_forward_naive(np.zeros((1, 1, 5, 5)), {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match="mode must be one of"):
        L.pad(np.zeros((1, 1, 2, 2)), 1, mode="mirror")
    out, cache = L.conv_forward_naive(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match="dout must have the shape of out"):
        L.conv_backward_naive(np.zeros((1, 2, 4, 4)), cache)


def test_conv_speed_benchmark_writes_a_report(tmp_path, monkeypatch, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "conv_speed.py"
    spec = importlib.util.spec_from_file_location("conv_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "CASE", dict(N=2, C=3, F=4, H=8, W=8, kernel=3, stride=1, pad=1))  # tiny, fast
    result = bench.main(["--repeats", "1", "--out", str(tmp_path / "conv_speed.json")])
    saved = json.loads((tmp_path / "conv_speed.json").read_text())
    assert saved["ratios"] == result["ratios"] and saved["case"]["dtype"] == "float64"
    assert set(saved["seconds"]) == {"naive forward", "im2col forward", "torch forward", "im2col backward",
                                     "torch forward+backward"}
    assert "naive / im2col (forward)" in capsys.readouterr().out
