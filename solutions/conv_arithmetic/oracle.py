"""Hidden tests of conv_arithmetic: per-student inputs and torch oracles (instructor only, never released).

Loaded by the grader (``cnncourse.grader.cases.load_oracle``); every expected value is measured on real torch
layers here, in the grader process: output sizes from ``Conv2d``/``MaxPool2d``/``ConvTranspose2d``, parameters
from ``numel``, MACs from ``FlopCounterMode`` (FLOPs / 2), receptive fields from autograd. Messages name the
inputs and the recognised mistake, never the expected value.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.grader.cases import Test
from cnncourse.testcells.compare import describe
from cnncourse.testcells.owncode import OwnCode
from cnncourse.testcells.wire import RaisedError

RULES = OwnCode(allowed=("math",), forbidden=("torch", "cnncourse"))

ALEXNET = [
    ("conv1", "conv", {"out_channels": 96, "kernel": 11, "stride": 4, "padding": 0}),
    ("pool1", "maxpool", {"kernel": 3, "stride": 2}),
    ("conv2", "conv", {"out_channels": 256, "kernel": 5, "stride": 1, "padding": 2}),
    ("pool2", "maxpool", {"kernel": 3, "stride": 2}),
    ("conv3", "conv", {"out_channels": 384, "kernel": 3, "stride": 1, "padding": 1}),
    ("conv4", "conv", {"out_channels": 384, "kernel": 3, "stride": 1, "padding": 1}),
    ("conv5", "conv", {"out_channels": 256, "kernel": 3, "stride": 1, "padding": 1}),
    ("pool5", "maxpool", {"kernel": 3, "stride": 2}),
    ("fc6", "linear", {"out_features": 4096}),
    ("fc7", "linear", {"out_features": 4096}),
    ("fc8", "linear", {"out_features": 1000}),
]
ALEXNET_INPUT = (3, 227, 227)


def _side(layer: nn.Module, n: int) -> int | None:
    """Output side of ``layer`` on a 1x1xnxn input, or None when torch refuses the configuration."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(layer(torch.zeros(1, 1, n, n)).shape[-1])
    except RuntimeError:
        return None


def _call(fn: str, case: dict) -> str:
    parts = [repr(a) for a in case["args"]] + [f"{k}={v!r}" for k, v in case["kwargs"].items()]
    return f"{fn}({', '.join(parts)})"


def _int_problem(call: str, got: Any) -> str | None:
    """The message for an answer that is not a Python int (the notebook states this rule)."""
    if isinstance(got, RaisedError):
        return f"{call} raised {got}, but this configuration is valid"
    if type(got) is not int:
        return f"{call} returned {describe(got)}: return a Python int (not a float, bool or numpy number)"
    return None


def _shown(got: Any) -> str:
    return repr(got) if type(got) in (int, float, str, tuple, list) else describe(got)


def _wrong(call: str, got: Any, hint: str | None) -> str:
    return f"{call} returned {got!r}, which is wrong" + (f"\nLikely cause: {hint}" if hint else "")


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
        tiling, untiled, too_big = tiling + (kind == "tiling"), untiled + (kind == "untiled"), too_big + (kind == "too_big")
        cases.append({"args": [n, k], "kwargs": {"stride": s, "padding": p, "dilation": d}})
    return cases


def _check_conv(case: dict, got: Any) -> str | None:
    (n, k), kw = case["args"], case["kwargs"]
    s, p, d = kw["stride"], kw["padding"], kw["dilation"]
    call = _call("conv_output_size", case)
    side = _side(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d), n)
    # torch floors; the windows tile exactly when the last one ends at the padded input's edge
    if side is None or (side - 1) * s + d * (k - 1) + 1 != n + 2 * p:
        if isinstance(got, RaisedError) and got.name == "ValueError":
            return None
        reason = "the dilated filter does not fit in the padded input" if side is None else \
            "the windows do not tile the padded input"
        return f"{call} returned {_shown(got)}: {reason}, so it must raise ValueError"
    problem = _int_problem(call, got)
    if problem or got == side:
        return problem
    span = n + 2 * p - d * (k - 1) - 1
    hint = ("the first window counts too: the number of positions is one more than the number of steps"
            if got == side - 1 else
            "the filter's dilation is ignored: a dilated filter covers more pixels than its size"
            if d > 1 and got == (n + 2 * p - k) // s + 1 else
            "padding adds zeros on both sides of the input" if p and got == (span - p) // s + 1 else
            "the stride is ignored: the window moves by the stride" if s > 1 and got == span + 1 else None)
    return _wrong(call, got, hint)


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
    call = _call("pool_output_size", case)
    side = _side(nn.MaxPool2d(k, stride=kw["stride"], ceil_mode=kw["ceil_mode"]), n)
    problem = _int_problem(call, got)
    if problem or got == side:
        return problem
    other = _side(nn.MaxPool2d(k, stride=kw["stride"], ceil_mode=not kw["ceil_mode"]), n)
    hint = ("ceil_mode decides what happens to a partial window at the end: True keeps it, False drops it"
            if got == other else
            "stride=None means the windows do not overlap: the stride is the kernel size"
            if kw["stride"] is None and got == _side(nn.MaxPool2d(k, stride=1), n) else None)
    return _wrong(call, got, hint)


def _transposed_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    while len(cases) < 30:
        n, k, s = int(rng.integers(1, 21)), int(rng.integers(1, 7)), int(rng.integers(1, 5))
        p, op = int(rng.integers(0, 3)), int(rng.integers(0, s))
        if _side(nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op), n):
            cases.append({"args": [n, k], "kwargs": {"stride": s, "padding": p, "output_padding": op}})
    return cases


def _check_transposed(case: dict, got: Any) -> str | None:
    (n, k), kw = case["args"], case["kwargs"]
    s, p, op = kw["stride"], kw["padding"], kw["output_padding"]
    call = _call("transposed_conv_output_size", case)
    side = _side(nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op), n)
    problem = _int_problem(call, got)
    if problem or got == side:
        return problem
    hint = ("output_padding is ignored: it adds rows and columns on one side of the output"
            if op and got == side - op else
            "padding removes rows on both sides of the output" if p and got == side + p else
            "n - 1 strides separate the first and the last input position" if got == side + s else None)
    return _wrong(call, got, hint)


def _same_cases(rng: np.random.Generator) -> list[dict]:
    even_k = [int(rng.choice([2, 4, 6, 8])) for _ in range(4)]  # with an even dilation they have a centre
    sizes = [(k, int(rng.choice([2, 4]))) for k in even_k[:2]] + [(k, int(rng.choice([1, 3]))) for k in even_k[2:]]
    sizes += [(int(rng.integers(1, 10)), int(rng.integers(1, 5))) for _ in range(16)]
    return [{"args": [k], "kwargs": {"dilation": d}} for k, d in sizes]


def _check_same(case: dict, got: Any) -> str | None:
    (k,), d = case["args"], case["kwargs"]["dilation"]
    call = _call("same_padding", case)
    n = 4 * d * k + 3
    keeps = [p for p in range(d * k + 1) if _side(nn.Conv2d(1, 1, k, padding=p, dilation=d), n) == n]
    if not keeps:
        if isinstance(got, RaisedError) and got.name == "ValueError":
            return None
        return (f"{call} returned {_shown(got)}: no padding keeps the size for this kernel and dilation, "
                "so it must raise ValueError")
    if isinstance(got, RaisedError) and k % 2 == 0:
        return (f"{call} raised {got}, but this filter has a centre" +
                "\nLikely cause: with an even dilation an even kernel covers an odd number of pixels")
    problem = _int_problem(call, got)
    if problem or got in keeps:
        return problem
    hint = "the dilation is ignored: a dilated filter covers more pixels than its size" if d > 1 and got == (k - 1) // 2 else None
    return _wrong(call, got, hint)


# ------------------------------------------------------------------------------------------ counts
def _params_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [int(rng.integers(1, 65)), int(rng.integers(1, 129)), int(rng.integers(1, 8))],
             "kwargs": {"bias": bool(rng.random() < 0.7)}} for _ in range(30)]


def _check_params(case: dict, got: Any) -> str | None:
    (c, f, k), bias = case["args"], case["kwargs"]["bias"]
    call = _call("conv_params", case)
    want = sum(t.numel() for t in nn.Conv2d(c, f, k, bias=bias).parameters())
    problem = _int_problem(call, got)
    if problem or got == want:
        return problem
    hint = ("one bias per filter is missing" if bias and got == want - f else
            "with bias=False there is no bias" if not bias and got == want + f else
            "each filter spans all input channels" if got == (want - (f if bias else 0)) // c + (f if bias else 0)
            else None)
    return _wrong(call, got, hint)


def _macs_of(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = layer(x)
    return out, counter.get_total_flops() // 2


def _macs_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [int(rng.integers(1, 33)), int(rng.integers(1, 65)), int(rng.integers(1, 8)),
                      int(rng.integers(1, 30))], "kwargs": {}} for _ in range(30)]


def _check_macs(case: dict, got: Any) -> str | None:
    c, f, k, out = case["args"]
    call = _call("conv_macs", case)
    _, want = _macs_of(nn.Conv2d(c, f, k, bias=False), torch.zeros(1, c, out + k - 1, out + k - 1))
    problem = _int_problem(call, got)
    if problem or got == want:
        return problem
    hint = ("that is FLOPs: one multiply-accumulate counts as one MAC" if got == 2 * want else
            "each output value is a dot product over all input channels" if got * c == want else None)
    return _wrong(call, got, hint)


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
    call = _call("receptive_field", case)
    want = measured_receptive_field(layers)
    problem = _int_problem(call, got)
    if problem or got == want:
        return problem
    included = 1 + sum(d * (k - 1) * int(np.prod([s_ for _, s_, _ in layers[:i + 1]])) for i, (k, _, d) in enumerate(layers))
    no_dilation = measured_receptive_field([(k, s, 1) for k, s, _ in layers])
    hint = ("a layer's growth is scaled by the strides of the layers BEFORE it, not its own stride"
            if got == included else
            "the dilation is ignored: a dilated filter covers more pixels than its size" if got == no_dilation else None)
    return _wrong(call, got, hint)


# ------------------------------------------------------------------------------------------ whole network
def _modules(layers: list, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module]]:
    """torch modules for a layer list of the notebook's format (a linear layer flattens its input)."""
    shape, out = tuple(input_shape), []
    for name, kind, spec in layers:
        if kind == "conv":
            layer = nn.Conv2d(shape[0], spec["out_channels"], spec["kernel"], stride=spec.get("stride", 1),
                              padding=spec.get("padding", 0))
        elif kind == "maxpool":
            layer = nn.MaxPool2d(spec["kernel"], stride=spec.get("stride"))
        elif kind == "linear":
            layer = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), spec["out_features"]))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
        with torch.no_grad():
            shape = tuple(layer(torch.zeros(1, *shape)).shape[1:])
        out.append((name, layer))
    return out


def network_rows(layers: list, input_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, output shape, parameters, MACs) per layer, measured on torch layers (FlopCounterMode / 2)."""
    x, rows = torch.zeros(1, *input_shape), []
    for name, layer in _modules(layers, input_shape):
        x, macs = _macs_of(layer, x)
        rows.append((name, tuple(int(v) for v in x.shape[1:]), sum(t.numel() for t in layer.parameters()), macs))
    return rows


def _random_network(rng: np.random.Generator) -> tuple[list, tuple[int, int, int]]:
    side = int(rng.integers(8, 41))
    shape, layers = (int(rng.integers(1, 5)), side, side), []
    for i in range(int(rng.integers(2, 6))):
        if side >= 4 and rng.random() < 0.3:
            layers.append((f"pool{i + 1}", "maxpool", {"kernel": 2, "stride": 2}))
            side //= 2
            continue
        while True:
            k, s, p = int(rng.integers(1, 6)), int(rng.integers(1, 3)), int(rng.integers(0, 3))
            span = side + 2 * p - k
            if span >= 0 and span % s == 0:
                break
        layers.append((f"conv{i + 1}", "conv", {"out_channels": int(rng.integers(2, 33)), "kernel": k,
                                                 "stride": s, "padding": p}))
        side = span // s + 1
    for j in range(int(rng.integers(1, 3))):
        layers.append((f"fc{len(layers) + 1}", "linear", {"out_features": int(rng.integers(2, 129))}))
    return layers, shape


def _network_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": list(_random_network(rng)), "kwargs": {}} for _ in range(6)]


def _row_problem(call: str, i: int, row: Any, want: tuple) -> str | None:
    name = want[0]
    if type(row) is not tuple or len(row) != 4:
        return f"{call}: row {i} ({name}) must be a tuple (name, out_shape, params, macs), got {describe(row)}"
    if row[0] != name:
        return f"{call}: row {i} is named {row[0]!r}, but layer {i} is {name!r}"
    shape = row[1]
    if type(shape) is not tuple or not all(type(v) is int for v in shape):
        return f"{call}: the output shape of {name} must be a tuple of ints, got {describe(shape)}"
    if shape != want[1]:
        hint = "a linear layer's output is (out_features,)" if len(want[1]) == 1 and len(shape) != 1 else None
        return f"{call}: the output shape of {name}, {shape}, is wrong" + (f"\nLikely cause: {hint}" if hint else "")
    for j, what in ((2, "parameters"), (3, "MACs")):
        if type(row[j]) is not int:
            return f"{call}: the {what} of {name} must be a Python int, got {describe(row[j])}"
        if row[j] != want[j]:
            hint = ("a pooling layer has no parameters" if j == 2 and "pool" in name and want[2] == 0 else
                    "that is FLOPs: one multiply-accumulate counts as one MAC" if j == 3 and row[j] == 2 * want[j] else
                    None)
            return f"{call}: the {what} of {name} ({row[j]}) are wrong" + (f"\nLikely cause: {hint}" if hint else "")
    return None


def _check_network(case: dict, got: Any) -> str | None:
    layers, input_shape = case["args"]
    call = f"network_table(<{len(layers)} layers: {', '.join(n for n, _, _ in layers)}>, {tuple(input_shape)})"
    want = network_rows(layers, tuple(input_shape))
    if isinstance(got, RaisedError):
        return f"{call} raised {got}, but every layer of this network fits its input"
    if type(got) is not list or len(got) != len(want):
        return f"{call} must return a list with one row per layer ({len(want)}), got {describe(got)}"
    for i, (row, ref) in enumerate(zip(got, want)):
        problem = _row_problem(call, i, row, ref)
        if problem:
            return problem
    return None


def _largest_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for _ in range(8):
        count = int(rng.integers(2, 9))
        params = rng.choice(10 ** 6, size=count, replace=False)
        macs = rng.choice(10 ** 8, size=count, replace=False)
        table = [(f"layer{i + 1}", (int(rng.integers(1, 64)),), int(params[i]), int(macs[i])) for i in range(count)]
        cases.append({"args": [table], "kwargs": {}})
    return cases


def _check_largest(case: dict, got: Any) -> str | None:
    (table,) = case["args"]
    call = f"largest_layers(<a table of {len(table)} rows>)"
    want = (max(table, key=lambda r: r[2])[0], max(table, key=lambda r: r[3])[0])
    if type(got) is not tuple or len(got) != 2 or not all(type(v) is str for v in got):
        return f"{call} must return a tuple of two layer names, got {_shown(got)}"
    if got == want:
        return None
    hint = "the two names are swapped: parameters first, then compute" if got == want[::-1] else None
    return _wrong(call, got, hint)


def _check_alexnet(case: dict, got: Any) -> str | None:
    rows = network_rows(ALEXNET, ALEXNET_INPUT)
    if type(got) is not tuple or len(got) != 3:
        return f"(alexnet_table, alexnet_most_params, alexnet_most_macs) is {describe(got)}"
    table, most_params, most_macs = got
    if type(table) is not list or len(table) != len(rows):
        return f"alexnet_table must be a list of {len(rows)} rows, got {describe(table)}"
    for i, (row, ref) in enumerate(zip(table, rows)):
        problem = _row_problem("alexnet_table", i, row, ref)
        if problem:
            return problem
    for label, value, key in (("alexnet_most_params", most_params, 2), ("alexnet_most_macs", most_macs, 3)):
        if value != max(rows, key=lambda r: r[key])[0]:
            return f"{label} = {_shown(value)} is wrong"
    return None


TESTS = {
    "conv_output_size": Test(cases=_conv_cases, check=_check_conv),
    "pool_output_size": Test(cases=_pool_cases, check=_check_pool),
    "transposed_conv_output_size": Test(cases=_transposed_cases, check=_check_transposed),
    "same_padding": Test(cases=_same_cases, check=_check_same),
    "conv_params": Test(cases=_params_cases, check=_check_params),
    "conv_macs": Test(cases=_macs_cases, check=_check_macs),
    "receptive_field": Test(cases=_rf_cases, check=_check_rf),
    "network_table": Test(cases=_network_cases, check=_check_network),
    "largest_layers": Test(cases=_largest_cases, check=_check_largest),
    "alexnet": Test(cases=lambda rng: [{"args": [], "kwargs": {}}], check=_check_alexnet),
}
