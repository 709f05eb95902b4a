"""cnncourse.testcells.hints: each classic mistake, made on purpose in a copy of the reference solution
(taken from solutions/conv_layers/conv_layers.ipynb by oracle_reference.reference), is named; a right answer gets no hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from solution_modules import load_solution_module

from cnncourse.testcells.hints import (batchnorm_backward_hint, batchnorm_hint, conv_backward_hint, conv_forward_hint,
                                      pool_backward_hint)

reference = load_solution_module("conv_layers/oracle_reference.py").reference  # the notebook's solution cells, executed

REF = reference()
WINDOW = "window = xp[n, :, i * S:i * S + HH, j * S:j * S + WW]"
PRODUCT = "out[n, f, i, j] = np.sum(window * w[f]) + b[f]"


def broken(grade_id: str, old: str, new: str):
    """The reference function ``grade_id`` with ``old`` replaced by ``new`` in its source."""
    return reference({grade_id: (old, new)})[grade_id]


def conv_case(seed, x_shape=(2, 3, 6, 6), w_shape=(4, 3, 3, 3), stride=1, pad=1):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    p = {"stride": stride, "padding": pad}
    out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride, padding=pad)
    return x, w, b, p, rng.standard_normal(tuple(out.shape))


FORWARD_MISTAKES = {  # name -> (old, new, words of the hint)
    "flipped": (PRODUCT, "out[n, f, i, j] = np.sum(window * w[f, :, ::-1, ::-1]) + b[f]", "true convolution"),
    "transposed": (PRODUCT, "out[n, f, i, j] = np.sum(window * w[f].transpose(0, 2, 1)) + b[f]", "transposed"),
    "no_bias": (PRODUCT, "out[n, f, i, j] = np.sum(window * w[f])", "bias is missing"),
    "stride_minus_one": (WINDOW, "window = xp[n, :, i * (S - 1):i * (S - 1) + HH, j * (S - 1):j * (S - 1) + WW]",
                         "off by one in the stride"),
    "no_plus_one": ("// S + 1, (W + 2 * P - WW) // S + 1", "// S, (W + 2 * P - WW) // S", "forget the +1"),
    "no_padding": ("xp = pad(x, P)", "xp = x", "unpadded x"),
}


@pytest.mark.parametrize("name", sorted(FORWARD_MISTAKES))
def test_conv_forward_hint_names_each_mistake(name):
    old, new, words = FORWARD_MISTAKES[name]
    forward = broken("conv_forward_naive", old, new)
    x, w, b, p, _ = conv_case(1, (2, 3, 7, 7), (4, 3, 3, 3), stride=2, pad=1)
    out = forward(x, w, b, p)[0]
    assert words in conv_forward_hint(out, x, w, b, p), name


def test_conv_forward_hint_is_silent_on_right_answers_and_none():
    x, w, b, p, _ = conv_case(2, (2, 3, 7, 7), stride=2)
    out = REF["conv_forward_naive"](x, w, b, p)[0]
    assert conv_forward_hint(out, x, w, b, p) == ""
    assert conv_forward_hint(None, x, w, b, p) == ""
    assert "one map per image and per filter" in conv_forward_hint(out[:, :2], x, w, b, p)
    assert "move by 1 pixel" in conv_forward_hint(  # stride 3 with windows stepping by one pixel
        broken("conv_forward_naive", WINDOW, "window = xp[n, :, i:i + HH, j:j + WW]")(
            *conv_case(3, (1, 2, 8, 8), (2, 2, 2, 2), 3, 0)[:4])[0], *conv_case(3, (1, 2, 8, 8), (2, 2, 2, 2), 3, 0)[:4])


BACKWARD_MISTAKES = {  # name -> (old, new, words of the hint); stride 1 with 3x3 kernels: windows overlap
    "dx_assigned": ("dxp[n, :, rows, cols] += ", "dxp[n, :, rows, cols] = ", "instead of ="),
    "dw_assigned": ("dw[f] += ", "dw[f] = ", "dw[f] += ... instead of ="),
    "dw_one_image": ("    for n in range(N):\n", "    for n in range(N):\n        dw = np.zeros_like(w, dtype=float)\n",
                     "dw only counts one image"),
    "db_wrong_axes": ("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(2, 3))", "db must have shape (F,)"),
    "db_averaged": ("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(0, 2, 3)) / N", "averaged over the images"),
    "dw_averaged": ("    dx = dxp[:, :, P:P + H, P:P + W]\n", "    dx = dxp[:, :, P:P + H, P:P + W]\n    dw = dw / N\n",
                    "dw is averaged"),
    "db_one_image": ("db = dout.sum(axis=(0, 2, 3))", "db = dout[-1].sum(axis=(1, 2))", "db only counts one image"),
    "dx_not_cropped": ("dx = dxp[:, :, P:P + H, P:P + W]", "dx = dxp", "crop the padding off"),
    "dx_cropped_wrong": ("dx = dxp[:, :, P:P + H, P:P + W]", "dx = dxp[:, :, :H, :W]", "cropped at the wrong place"),
}


@pytest.mark.parametrize("name", sorted(BACKWARD_MISTAKES))
def test_conv_backward_hint_names_each_mistake(name):
    old, new, words = BACKWARD_MISTAKES[name]
    backward = broken("conv_backward_naive", old, new)
    x, w, b, p, dout = conv_case(4)
    dx, dw, db = backward(dout, (x, w, b, p))
    assert words in conv_backward_hint(dx, dw, db, x, w, p, dout), name


def test_conv_backward_hint_is_silent_on_the_right_gradients():
    for stride, pad in [(1, 1), (2, 1), (2, 0)]:
        x, w, b, p, dout = conv_case(5, (2, 2, 7, 7), (3, 2, 3, 3), stride, pad)
        dx, dw, db = REF["conv_backward_naive"](dout, (x, w, b, p))
        assert conv_backward_hint(dx, dw, db, x, w, p, dout) == ""


def pool_case(seed, kind, shape=(2, 2, 5, 5), size=3, stride=1, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if ties:
        x = np.round(x)  # few distinct values: many windows have several equal maxima
    p = {"pool_height": size, "pool_width": size, "stride": stride}
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    dout = rng.standard_normal(tuple(fn(torch.from_numpy(x), size, stride=stride).shape))
    return x, p, dout


POOL_MISTAKES = {  # name -> (kind, old, new, case keywords, words of the hint)
    "max_every_tie": ("max", "k, l = np.unravel_index(np.argmax(window), window.shape)\n"
                             "                    dx[n, c, i * S + k, j * S + l] += dout[n, c, i, j]",
                      "dx[n, c, i * S:i * S + PH, j * S:j * S + PW] += (window == window.max()) * dout[n, c, i, j]",
                      {"ties": True, "size": 2, "stride": 2}, "several equal maxima"),
    "max_spread": ("max", "k, l = np.unravel_index(np.argmax(window), window.shape)\n"
                          "                    dx[n, c, i * S + k, j * S + l] += dout[n, c, i, j]",
                   "dx[n, c, i * S:i * S + PH, j * S:j * S + PW] += dout[n, c, i, j]",
                   {"size": 2, "stride": 2}, "only the maximum"),
    "max_no_offset": ("max", "dx[n, c, i * S + k, j * S + l]", "dx[n, c, k, l]", {"size": 2, "stride": 2},
                      "wrong place"),
    "max_swapped": ("max", "dx[n, c, i * S + k, j * S + l]", "dx[n, c, i * S + l, j * S + k]",
                    {"size": 2, "stride": 2}, "swapped"),
    "max_assigned": ("max", "dx[n, c, i * S + k, j * S + l] += ", "dx[n, c, i * S + k, j * S + l] = ", {},
                     "instead of ="),
    "avg_not_divided": ("avg", " / (PH * PW)", "", {"size": 2, "stride": 2}, "divide dout by the window size"),
    "avg_divided_once": ("avg", " / (PH * PW)", " / PH", {"size": 2, "stride": 2}, "dout / (pool_height * pool_width)"),
    "avg_assigned": ("avg", "] += dout", "] = dout", {}, "instead of ="),
}


@pytest.mark.parametrize("name", sorted(POOL_MISTAKES))
def test_pool_backward_hint_names_each_mistake(name):
    kind, old, new, keywords, words = POOL_MISTAKES[name]
    backward = broken(f"{kind}_pool_backward_naive", old, new)
    x, p, dout = pool_case(6, kind, **keywords)
    assert words in pool_backward_hint(kind, backward(dout, (x, p)), x, p, dout), name


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_backward_hint_is_silent_on_the_right_gradient(kind):
    for keywords in ({}, {"size": 2, "stride": 2}, {"ties": True, "size": 2, "stride": 2}):
        x, p, dout = pool_case(7, kind, **keywords)
        dx = REF[f"{kind}_pool_backward_naive"](dout, (x, p))
        assert pool_backward_hint(kind, dx, x, p, dout) == ""
    assert pool_backward_hint(kind, None, x, p, dout) == ""


BN_FORWARD_MISTAKES = {  # name -> (old, new, mode, words of the hint)
    "unbiased_normalisation": ("x.var(axis=(0, 2, 3))", "x.var(axis=(0, 2, 3), ddof=1)", "train", "biased batch variance"),
    "biased_running_var": ("momentum * var * m / (m - 1)", "momentum * var", "train", "unbiased batch variance"),
    "momentum_swapped": ("(1 - momentum) * running_mean + momentum * mean", "momentum * running_mean + (1 - momentum) * mean",
                         "train", "other way round"),
    "batch_stats_in_test": ("mean, var = running_mean, running_var", "mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))",
                            "test", "not the batch's statistics"),
}


def bn_case(seed, shape=(4, 3, 5, 6)):
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal(shape) + 2
    return x, rng.standard_normal(shape[1]), rng.standard_normal(shape[1]), rng.standard_normal(shape)


@pytest.mark.parametrize("name", sorted(BN_FORWARD_MISTAKES))
def test_batchnorm_hint_names_each_mistake(name):
    old, new, mode, words = BN_FORWARD_MISTAKES[name]
    forward = broken("spatial_batchnorm_forward", old, new)
    x, gamma, beta, _ = bn_case(8)
    running = (np.linspace(-1, 1, 3), np.linspace(0.5, 2, 3))
    bn_param = {"mode": mode, "running_mean": running[0].copy(), "running_var": running[1].copy()}
    out, _ = forward(x, gamma, beta, bn_param)
    assert words in batchnorm_hint(out, bn_param, x, gamma, beta, mode, *running), name


def test_batchnorm_hint_per_image_statistics_and_right_answers():
    x, gamma, beta, _ = bn_case(9)
    per_image = F.instance_norm(torch.from_numpy(x), weight=torch.from_numpy(gamma), bias=torch.from_numpy(beta)).numpy()
    assert "each image on its own" in batchnorm_hint(per_image, {"mode": "train"}, x, gamma, beta, "train")
    per_pixel = F.batch_norm(torch.from_numpy(x).reshape(x.shape[0], -1), None, None, training=True).numpy()
    per_pixel = per_pixel.reshape(x.shape) * gamma[:, None, None] + beta[:, None, None]  # BatchNorm1d on pixels
    assert "*and pixel*" in batchnorm_hint(per_pixel, {"mode": "train"}, x, gamma, beta, "train")
    for mode in ("train", "test"):
        bn_param = {"mode": mode, "running_mean": np.zeros(3), "running_var": np.ones(3)}
        out, _ = REF["spatial_batchnorm_forward"](x, gamma, beta, bn_param)
        assert batchnorm_hint(out, bn_param, x, gamma, beta, mode, np.zeros(3), np.ones(3)) == ""


BN_BACKWARD_MISTAKES = {
    "constants": ("    dx = (g - g.mean(axis=(0, 2, 3), keepdims=True)\n"
                  "          - x_hat * (g * x_hat).mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(var + eps)[None, :, None, None]",
                  "    dx = g / np.sqrt(var + eps)[None, :, None, None]", "as constants"),
    "no_variance_path": ("\n          - x_hat * (g * x_hat).mean(axis=(0, 2, 3), keepdims=True))", ")",
                         "the one through the variance is missing"),
    "no_mean_path": ("(g - g.mean(axis=(0, 2, 3), keepdims=True)\n", "(g\n", "the one through the mean is missing"),
}


@pytest.mark.parametrize("name", sorted(BN_BACKWARD_MISTAKES))
def test_batchnorm_backward_hint_names_each_mistake(name):
    old, new, words = BN_BACKWARD_MISTAKES[name]
    backward = broken("spatial_batchnorm_backward", old, new)
    x, gamma, beta, dout = bn_case(10)
    _, cache = REF["spatial_batchnorm_forward"](x, gamma, beta, {"mode": "train"})
    assert words in batchnorm_backward_hint(backward(dout, cache)[0], x, gamma, dout), name
    assert batchnorm_backward_hint(REF["spatial_batchnorm_backward"](dout, cache)[0], x, gamma, dout) == ""
