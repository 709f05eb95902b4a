"""cnncourse.layers (input checks, no answers) and the instructor's reference layers of conv_layers, taken from
the source notebook, against torch.nn.functional and autograd (float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from solution_modules import load_solution_module

from cnncourse import layers

reference = load_solution_module("conv_layers/oracle_reference.py").reference  # the notebook's solution cells, executed
REF = reference()
CASES = 60


def rel_error(actual, expected):
    """Max relative error, with |expected| floored at 1 so entries near 0 do not blow it up."""
    return float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))))


def random_conv(rng):
    """A random tiling convolution: non-square images and kernels, stride 1-3, pad 0-2, output sides 1-4."""
    while True:
        kh, kw, s, p = (int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4)),
                        int(rng.integers(0, 3)))
        H, W = ((int(rng.integers(1, 5)) - 1) * s + k - 2 * p for k in (kh, kw))
        if H >= 1 and W >= 1:
            break
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W))
    w = rng.standard_normal((int(rng.integers(1, 4)), x.shape[1], kh, kw))
    return x, w, rng.standard_normal(w.shape[0]), {"stride": s, "padding": p}


@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_reference_conv_matches_torch(impl):
    rng = np.random.default_rng(0)
    for _ in range(CASES):
        x, w, b, p = random_conv(rng)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        out = F.conv2d(tx, tw, tb, stride=p["stride"], padding=p["padding"])
        got, cache = REF[f"conv_forward_{impl}"](x, w, b, p)
        assert rel_error(got, out.detach().numpy()) < 1e-10, (x.shape, w.shape, p)
        if impl == "naive":
            dout = rng.standard_normal(tuple(out.shape))
            out.backward(torch.from_numpy(dout))
            for got_grad, want in zip(REF["conv_backward_naive"](dout, cache), (tx, tw, tb)):
                assert rel_error(got_grad, want.grad.numpy()) < 1e-10, (x.shape, w.shape, p)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_reference_pooling_matches_torch(kind):
    rng = np.random.default_rng(1)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    for _ in range(CASES):
        ph, pw, s = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        H, W = (int(rng.integers(0, 4)) * s + k for k in (ph, pw))
        x = rng.standard_normal((2, 2, H, W))
        tx = torch.tensor(x, requires_grad=True)
        out = fn(tx, (ph, pw), stride=s)
        dout = rng.standard_normal(tuple(out.shape))
        out.backward(torch.from_numpy(dout))
        p = {"pool_height": ph, "pool_width": pw, "stride": s}
        got, cache = REF[f"{kind}_pool_forward_naive"](x, p)
        assert rel_error(got, out.detach().numpy()) < 1e-12
        assert rel_error(REF[f"{kind}_pool_backward_naive"](dout, cache), tx.grad.numpy()) < 1e-12


def test_no_graded_layer_in_the_package():
    graded = {"pad", "conv_forward_naive", "conv_backward_naive", "conv_forward_im2col", "conv_backward_im2col",
              "max_pool_forward_naive", "max_pool_backward_naive", "avg_pool_forward_naive",
              "avg_pool_backward_naive", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
              "ThreeLayerConvNet"}
    assert not graded & set(dir(layers))
    assert set(layers.__all__) == {"check_conv_args", "check_pool_args"}


def test_check_conv_args_returns_pairs_and_names_the_bad_argument():
    x, w, b = np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2)
    assert layers.check_conv_args(x, w, b, {"stride": 2, "padding": 1}) == ((2, 2), (1, 1))
    assert layers.check_conv_args(x, w, b, {"stride": (1, 2), "padding": (0, 1)}) == ((1, 2), (0, 1))
    for args, words in [((x[0], w, b, {"stride": 1, "padding": 0}), "x must be a 4-d"),
                        ((x, w[:, :2], b, {"stride": 1, "padding": 0}), "channels of x and w differ"),
                        ((x, w, np.zeros(3), {"stride": 1, "padding": 0}), "b must have shape"),
                        ((x, w, b, {"stride": 1}), "keys 'stride' and 'padding'"),
                        ((x, w, b, {"stride": 0, "padding": 0}), "stride must be >= 1"),
                        ((x, w, b, {"stride": 1.0, "padding": 0}), "stride must be an int"),
                        ((x, w, b, {"stride": 3, "padding": 0}), "does not tile the height"),
                        ((x, np.zeros((2, 3, 7, 7)), b, {"stride": 1, "padding": 0}), "larger than")]:
        with pytest.raises(ValueError, match=words):
            layers.check_conv_args(*args)


def test_check_pool_args():
    x = np.zeros((1, 1, 4, 6))
    assert layers.check_pool_args(x, {"pool_height": 2, "pool_width": 2, "stride": 2}) == ((2, 2), 2)
    with pytest.raises(ValueError, match="pool_param must be a dict"):
        layers.check_pool_args(x, {"pool_height": 2, "stride": 2})
    with pytest.raises(ValueError, match="does not tile the width"):
        layers.check_pool_args(x, {"pool_height": 2, "pool_width": 3, "stride": 2})
