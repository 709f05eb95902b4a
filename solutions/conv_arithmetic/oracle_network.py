"""Hidden tests of conv_arithmetic's whole-network part (instructor only, never released; see oracle.py).

``network_rows`` measures each layer of a ``(name, type, settings)`` list on real torch layers: output shape,
``numel()`` of its parameters and torch's FLOP formulas / 2 as MACs (``macs_of``). The layers live on torch's
``meta`` device: torch's own shape rules and FLOP formulas, without initialising weights or computing a single
output (AlexNet's table: 1.7 s of CPU on real tensors, 8 ms on meta ones, the same numbers).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import conv_flop_count, mm_flop

from cnncourse.grader.cases import shown, wrong_answer
from cnncourse.testcells.compare import describe
from cnncourse.testcells.wire import RaisedError

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
META = torch.device("meta")  # shapes, parameters and FLOPs without weights or arithmetic
# torch imports its symbolic-shape machinery (sympy, ~0.4 s) at the first convolution on the meta device: do it
# when the grader loads this oracle, once per grading run, not in every worker the run forks (a meta tensor
# computes nothing, so no thread pool starts before the fork)
with torch.no_grad():
    nn.Conv2d(1, 1, 1, device=META)(torch.zeros(1, 1, 1, 1, device=META))


class _Linear(nn.Linear):
    """``nn.Linear`` (its parameters, bias included) whose forward leaves the bias addition out: on the meta
    device torch's ``addmm`` decomposition imports torch's compiler (``torch._dynamo``, 1.2-1.5 s per grading
    process), and adding the bias changes neither the output's shape nor the MACs (torch counts none for it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


def macs_of(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Run ``layer`` on ``x``; returns its output and its MACs: torch's own FLOP formulas, the ones
    ``FlopCounterMode`` applies (``conv_flop_count`` per convolution, ``mm_flop`` per linear layer, biases not
    counted), on the shapes each ``Conv2d``/``Linear`` meets as it runs, / 2. Forward hooks rather than
    ``FlopCounterMode`` itself, whose dispatch mode imports torch's compiler (``torch._dynamo``, 1.2-1.5 s) into
    every grading process; tests/grader/test_oracle_meta.py checks that both count the same."""
    flops = []

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        (inp,) = inputs
        if isinstance(module, nn.Conv2d):
            flops.append(conv_flop_count(list(inp.shape), list(module.weight.shape), list(output.shape)))
        else:  # a linear layer: one (rows, in) @ (in, out) product
            flops.append(mm_flop((inp.numel() // module.in_features, module.in_features),
                                 (module.in_features, module.out_features)))

    hooks = [m.register_forward_hook(count) for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = layer(x)
    finally:
        for hook in hooks:
            hook.remove()
    return out, sum(flops) // 2


def _modules(layers: list, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module]]:
    """torch modules for a layer list of the notebook's format (a linear layer flattens its input)."""
    shape, out = tuple(input_shape), []
    for name, kind, spec in layers:
        if kind == "conv":
            layer = nn.Conv2d(shape[0], spec["out_channels"], spec["kernel"], stride=spec.get("stride", 1),
                              padding=spec.get("padding", 0), device=META)
        elif kind == "maxpool":
            layer = nn.MaxPool2d(spec["kernel"], stride=spec.get("stride"))
        elif kind == "linear":
            layer = nn.Sequential(nn.Flatten(), _Linear(int(np.prod(shape)), spec["out_features"], device=META))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
        with torch.no_grad():
            shape = tuple(layer(torch.zeros(1, *shape, device=META)).shape[1:])
        out.append((name, layer))
    return out


def network_rows(layers: list, input_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, output shape, parameters, MACs) per layer, measured on torch layers (``macs_of``)."""
    x, rows = torch.zeros(1, *input_shape, device=META), []
    for name, layer in _modules(layers, input_shape):
        x, macs = macs_of(layer, x)
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


def network_cases(rng: np.random.Generator) -> list[dict]:
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


def check_network(case: dict, got: Any) -> str | None:
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


def largest_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for _ in range(8):
        count = int(rng.integers(2, 9))
        params = rng.choice(10 ** 6, size=count, replace=False)
        macs = rng.choice(10 ** 8, size=count, replace=False)
        table = [(f"layer{i + 1}", (int(rng.integers(1, 64)),), int(params[i]), int(macs[i])) for i in range(count)]
        cases.append({"args": [table], "kwargs": {}})
    return cases


def check_largest(case: dict, got: Any) -> str | None:
    (table,) = case["args"]
    call = f"largest_layers(<a table of {len(table)} rows>)"
    want = (max(table, key=lambda r: r[2])[0], max(table, key=lambda r: r[3])[0])
    if type(got) is not tuple or len(got) != 2 or not all(type(v) is str for v in got):
        return f"{call} must return a tuple of two layer names, got {shown(got)}"
    if got == want:
        return None
    hint = "the two names are swapped: parameters first, then compute" if got == want[::-1] else None
    return wrong_answer(call, got, hint)


def check_alexnet(case: dict, got: Any) -> str | None:
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
            return f"{label} = {shown(value)} is wrong"
    return None
