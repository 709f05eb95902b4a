"""Hidden tests of conv_arithmetic: per-student inputs and torch oracles (instructor only, never released).

Loaded by the grader (``cnncourse.grader.cases.load_oracle``), with the whole-network tests in
``oracle_network.py``; every expected value is measured on real torch
layers here, in the grader process: output sizes from ``Conv2d``/``MaxPool2d``/``ConvTranspose2d``, parameters
from ``numel``, MACs from torch's FLOP formulas (``oracle_network.macs_of``), receptive fields from autograd.
Sizes, parameters and MACs are measured on torch's ``meta`` device (torch's shape rules and FLOP formulas, no
weights initialised and no arithmetic: the grader's CPU goes to grading, not to convolving zeros); receptive
fields need gradients, so they run on small CPU tensors. Messages name the inputs and the recognised mistake,
never the expected value.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from cnncourse.grader.cases import Test, call_text, int_problem, shown, wrong_answer
from cnncourse.testcells.owncode import OwnCode
from cnncourse.testcells.wire import RaisedError
from oracle_network import META, check_alexnet, check_largest, check_network, largest_cases, macs_of, network_cases

RULES = OwnCode(allowed=("math",), forbidden=("torch", "cnncourse"))
DILATION_IGNORED = "the dilation is ignored: a dilated filter covers more pixels than its size"

def _side(layer: nn.Module, n: int) -> int | None:
    """Output side of ``layer`` (on the meta device) on a 1x1xnxn input, or None when torch refuses the
    configuration."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(layer(torch.zeros(1, 1, n, n, device=META)).shape[-1])
    except RuntimeError:
        return None


# ------------------------------------------------------------------------------------------ output sizes
def _conv_cases(rng: np.random.Generator) -> list[dict]:
    cases: list[dict] = []
    tiling, untiled, too_big = 0, 0, 0
    while tiling + untiled + too_big < 40:
        n, k, s = int(rng.integers(1, 41)), int(rng.integers(1, 8)), int(rng.integers(1, 5))
        p, d = int(rng.integers(0, 4)), int(rng.integers(1, 4))
        span = n + 2 * p - d * (k - 1) - 1
        kind = "too_big" if span < 0 else "untiled" if span % s else "tiling"
        if (kind == "tiling" and tiling >= 28) or (kind == "untiled" and untiled >= 8) or \
                (kind == "too_big" and too_big >= 4):
            continue
        tiling, untiled = tiling + (kind == "tiling"), untiled + (kind == "untiled")
        too_big += kind == "too_big"
        cases.append({"args": [n, k], "kwargs": {"stride": s, "padding": p, "dilation": d}})
    return cases


def _check_conv(case: dict, got: Any) -> str | None:
    (n, k), kw = case["args"], case["kwargs"]
    s, p, d = kw["stride"], kw["padding"], kw["dilation"]
    call = call_text("conv_output_size", case)
    side = _side(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, device=META), n)
    # torch floors; the windows tile exactly when the last one ends at the padded input's edge
    if side is None or (side - 1) * s + d * (k - 1) + 1 != n + 2 * p:
        if isinstance(got, RaisedError) and got.name == "ValueError":
            return None
        reason = "the dilated filter does not fit in the padded input" if side is None else \
            "the windows do not tile the padded input"
        return f"{call} returned {shown(got)}: {reason}, so it must raise ValueError"
    problem = int_problem(call, got)
    if problem or got == side:
        return problem
    span = n + 2 * p - d * (k - 1) - 1
    hint = ("the first window counts too: the number of positions is one more than the number of steps"
            if got == side - 1 else
            DILATION_IGNORED
            if d > 1 and got == (n + 2 * p - k) // s + 1 else
            "padding adds zeros on both sides of the input" if p and got == (span - p) // s + 1 else
            "the stride is ignored: the window moves by the stride" if s > 1 and got == span + 1 else None)
    return wrong_answer(call, got, hint)


def _pool_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for _ in range(30):
        k = int(rng.integers(1, 6))
        n = int(rng.integers(k, 41))
        stride = int(rng.integers(1, k + 1)) if rng.random() < 0.7 else None
        cases.append({"args": [n, k], "kwargs": {"stride": stride, "ceil_mode": bool(rng.random() < 0.5)}})
    return cases


def _check_pool(case: dict, got: Any) -> str | None:
    (n, k), kw = case["args"], case["kwargs"]
    call = call_text("pool_output_size", case)
    side = _side(nn.MaxPool2d(k, stride=kw["stride"], ceil_mode=kw["ceil_mode"]), n)
    problem = int_problem(call, got)
    if problem or got == side:
        return problem
    other = _side(nn.MaxPool2d(k, stride=kw["stride"], ceil_mode=not kw["ceil_mode"]), n)
    hint = ("ceil_mode decides what happens to a partial window at the end: True keeps it, False drops it"
            if got == other else
            "stride=None means the windows do not overlap: the stride is the kernel size"
            if kw["stride"] is None and got == _side(nn.MaxPool2d(k, stride=1), n) else None)
    return wrong_answer(call, got, hint)


def _transposed_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    while len(cases) < 30:
        n, k, s = int(rng.integers(1, 21)), int(rng.integers(1, 7)), int(rng.integers(1, 5))
        p, op = int(rng.integers(0, 3)), int(rng.integers(0, s))
        if _side(nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, device=META), n):
            cases.append({"args": [n, k], "kwargs": {"stride": s, "padding": p, "output_padding": op}})
    return cases


def _check_transposed(case: dict, got: Any) -> str | None:
    (n, k), kw = case["args"], case["kwargs"]
    s, p, op = kw["stride"], kw["padding"], kw["output_padding"]
    call = call_text("transposed_conv_output_size", case)
    side = _side(nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, device=META), n)
    problem = int_problem(call, got)
    if problem or got == side:
        return problem
    hint = ("output_padding is ignored: it adds rows and columns on one side of the output"
            if op and got == side - op else
            "padding removes rows on both sides of the output" if p and got == side + p else
            "n - 1 strides separate the first and the last input position" if got == side + s else None)
    return wrong_answer(call, got, hint)


def _same_cases(rng: np.random.Generator) -> list[dict]:
    even_k = [int(rng.choice([2, 4, 6, 8])) for _ in range(4)]  # with an even dilation they have a centre
    sizes = [(k, int(rng.choice([2, 4]))) for k in even_k[:2]] + [(k, int(rng.choice([1, 3]))) for k in even_k[2:]]
    sizes += [(int(rng.integers(1, 10)), int(rng.integers(1, 5))) for _ in range(16)]
    return [{"args": [k], "kwargs": {"dilation": d}} for k, d in sizes]


def _check_same(case: dict, got: Any) -> str | None:
    (k,), d = case["args"], case["kwargs"]["dilation"]
    call = call_text("same_padding", case)
    n = 4 * d * k + 3
    keeps = [p for p in range(d * k + 1) if _side(nn.Conv2d(1, 1, k, padding=p, dilation=d, device=META), n) == n]
    if not keeps:
        if isinstance(got, RaisedError) and got.name == "ValueError":
            return None
        return (f"{call} returned {shown(got)}: no padding keeps the size for this kernel and dilation, "
                "so it must raise ValueError")
    if isinstance(got, RaisedError) and k % 2 == 0:
        return (f"{call} raised {got}, but this filter has a centre" +
                "\nLikely cause: with an even dilation an even kernel covers an odd number of pixels")
    problem = int_problem(call, got)
    if problem or got in keeps:
        return problem
    hint = DILATION_IGNORED if d > 1 and got == (k - 1) // 2 else None
    return wrong_answer(call, got, hint)


# ------------------------------------------------------------------------------------------ counts
def _params_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [int(rng.integers(1, 65)), int(rng.integers(1, 129)), int(rng.integers(1, 8))],
             "kwargs": {"bias": bool(rng.random() < 0.7)}} for _ in range(30)]


def _check_params(case: dict, got: Any) -> str | None:
    (c, f, k), bias = case["args"], case["kwargs"]["bias"]
    call = call_text("conv_params", case)
    want = sum(t.numel() for t in nn.Conv2d(c, f, k, bias=bias, device=META).parameters())
    problem = int_problem(call, got)
    if problem or got == want:
        return problem
    hint = ("one bias per filter is missing" if bias and got == want - f else
            "with bias=False there is no bias" if not bias and got == want + f else
            "each filter spans all input channels" if got == (want - (f if bias else 0)) // c + (f if bias else 0)
            else None)
    return wrong_answer(call, got, hint)


def _macs_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [int(rng.integers(1, 33)), int(rng.integers(1, 65)), int(rng.integers(1, 8)),
                      int(rng.integers(1, 30))], "kwargs": {}} for _ in range(30)]


def _check_macs(case: dict, got: Any) -> str | None:
    c, f, k, out = case["args"]
    call = call_text("conv_macs", case)
    _, want = macs_of(nn.Conv2d(c, f, k, bias=False, device=META),
                     torch.zeros(1, c, out + k - 1, out + k - 1, device=META))
    problem = int_problem(call, got)
    if problem or got == want:
        return problem
    hint = ("that is FLOPs: one multiply-accumulate counts as one MAC" if got == 2 * want else
            "each output value is a dot product over all input channels" if got * c == want else None)
    return wrong_answer(call, got, hint)


def measured_receptive_field(layers: list[tuple[int, int, int]]) -> int:
    """Input pixels (along one axis) that reach the middle output unit, measured with autograd."""
    reach, jump = 0, 1
    for k, s, d in layers:
        reach, jump = reach + d * (k - 1) * jump, jump * s
    x = torch.ones(1, 1, 1, 4 * reach + 64, requires_grad=True)
    net = nn.Sequential(*[nn.Conv2d(1, 1, (1, k), stride=(1, s), dilation=(1, d), bias=False) for k, s, d in layers])
    for conv in net:
        nn.init.constant_(conv.weight, 1.0)
    y = net(x)
    y[0, 0, 0, y.shape[-1] // 2].backward()
    hit = (x.grad[0, 0, 0] != 0).nonzero().flatten()
    return int(hit.max() - hit.min() + 1)


def _rf_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [[(int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 4)))
                       for _ in range(int(rng.integers(1, 6)))]], "kwargs": {}} for _ in range(25)]


def _check_rf(case: dict, got: Any) -> str | None:
    (layers,) = case["args"]
    call = call_text("receptive_field", case)
    want = measured_receptive_field(layers)
    problem = int_problem(call, got)
    if problem or got == want:
        return problem
    strides_so_far = [int(np.prod([s for _, s, _ in layers[:i + 1]])) for i in range(len(layers))]
    included = 1 + sum(d * (k - 1) * jump for (k, _, d), jump in zip(layers, strides_so_far))
    no_dilation = measured_receptive_field([(k, s, 1) for k, s, _ in layers])
    hint = ("a layer's growth is scaled by the strides of the layers BEFORE it, not its own stride"
            if got == included else
            DILATION_IGNORED if got == no_dilation else None)
    return wrong_answer(call, got, hint)


TESTS = {
    "conv_output_size": Test(cases=_conv_cases, check=_check_conv),
    "pool_output_size": Test(cases=_pool_cases, check=_check_pool),
    "transposed_conv_output_size": Test(cases=_transposed_cases, check=_check_transposed),
    "same_padding": Test(cases=_same_cases, check=_check_same),
    "conv_params": Test(cases=_params_cases, check=_check_params),
    "conv_macs": Test(cases=_macs_cases, check=_check_macs),
    "receptive_field": Test(cases=_rf_cases, check=_check_rf),
    "network_table": Test(cases=network_cases, check=check_network),
    "largest_layers": Test(cases=largest_cases, check=check_largest),
    "alexnet": Test(cases=lambda rng: [{"args": [], "kwargs": {}}], check=check_alexnet),
}
