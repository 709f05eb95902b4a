"""cnncourse.testcells.hints: each classic mistake, made on purpose in a copy of the reference solution
(taken from solutions/conv_layers/conv_layers.ipynb), is named; a right answer gets no hint."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnncourse.testcells.hints import conv_backward_hint, conv_forward_hint, pool_backward_hint

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("conv_layers_reference", ROOT / "solutions/conv_layers/reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

REF = reference.load()
WINDOW = "window = xp[n, :, i * S:i * S + HH, j * S:j * S + WW]"
PRODUCT = "out[n, f, i, j] = np.sum(window * w[f]) + b[f]"


def broken(grade_id: str, old: str, new: str):
    """The reference function ``grade_id`` with ``old`` replaced by ``new`` in its source."""
    return reference.load({grade_id: (old, new)})[grade_id]


def conv_case(seed, x_shape=(2, 3, 6, 6), w_shape=(4, 3, 3, 3), stride=1, pad=1):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    p = {"stride": stride, "pad": pad}
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
