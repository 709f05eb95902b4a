"""Hidden tests of ``cnn_architectures`` (instructor only: never released, never in the student's kernel).

Each test draws one student's inputs from the grader's generator and checks the answers against torch
computations made here. Messages name the inputs and the recognised mistake, never an expected value.
The block oracles are functional (``F.conv2d``/``F.batch_norm`` on the weights the grader chose); the design
task is scored on validation images whose labels stay in this process.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnncourse import data
from cnncourse.grader.cases import Test
from cnncourse.testcells.compare import describe, mismatch
from cnncourse.testcells.owncode import OwnCode

RTOL, ATOL = 1e-4, 1e-4
RULES = OwnCode(forbidden=("cnncourse", "data", "train"))   # stated in the notebook, checked by test_shortcut_a

# The design task (part 6): the notebook's design_rules cell states the same values (tests/test_cnn_architectures.py).
DESIGN = dict(classes=["circle", "square", "triangle", "cross"], noise=0.05, scale=(0.2, 0.35), clutter=0.5)
PARAM_BUDGET, MAC_BUDGET = 65_000, 4_000_000
DESIGN_EPOCHS, DESIGN_LR, N_TRAIN, ACCURACY = 6, 3e-3, 2048, 0.70
N_VAL = 320
_VAL_LABELS: dict[str, np.ndarray] = {}     # sha256 of the validation images -> their labels (grader only)


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else ""


def _raised(got: Any) -> str | None:
    if type(got).__name__ == "RaisedError":
        return f"your code raised {got}"
    return None


def _compare(got: Any, want: torch.Tensor, name: str, variants: dict[str, torch.Tensor] | None = None) -> str | None:
    """None when ``got`` matches ``want``; else the mismatch and, if ``got`` matches a known mistake, its hint."""
    problem = mismatch(got, want.numpy(), name=name, rtol=RTOL, atol=ATOL, reveal=False)
    if problem is None:
        return None
    for hint, wrong in (variants or {}).items():
        if isinstance(got, np.ndarray) and got.shape == tuple(wrong.shape) and np.allclose(
                got, wrong.numpy(), rtol=RTOL, atol=ATOL):
            return f"{problem}\nLikely cause: {hint}"
    return problem


# ------------------------------------------------------------------------------------------ 1. shortcut_a
def shortcut_a(x: torch.Tensor, out_channels: int, stride: int, pad_where: str = "after", offset: int = 0
               ) -> torch.Tensor:
    """Option A (and, for hints, its usual mistakes: zeros in front/on both sides, sampling from row 1)."""
    extra = out_channels - x.shape[1]
    sampled = x[:, :, offset::stride, offset::stride]
    front = {"after": 0, "before": extra, "both": extra // 2}[pad_where]
    return F.pad(sampled, (0, 0, 0, 0, front, extra - front))


def _shortcut_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for stride, same in ((2, False), (1, True), (2, False), (3, False), (1, False)):
        c = int(rng.integers(1, 6))
        out = c if same else c + int(rng.integers(1, 7))
        shape = (int(rng.integers(1, 4)), c, int(rng.integers(3, 10)), int(rng.integers(3, 10)))
        x = rng.standard_normal(shape)
        out_shape = (shape[0], out, -(-shape[2] // stride), -(-shape[3] // stride))
        cases.append({"args": [x, out, stride, rng.standard_normal(out_shape)], "kwargs": {}})
    return cases


def _grad(fn: Callable[[torch.Tensor], torch.Tensor], x: Any, dout: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xt = _t(x).requires_grad_(True)
    out = fn(xt)
    (out * _t(dout)).sum().backward()
    return out.detach(), xt.grad


def _shortcut_check(case: dict, got: Any) -> str | None:
    x, out_channels, stride, dout = case["args"]
    name = f"shortcut_a(x of shape {tuple(x.shape)}, {out_channels}, {stride})"
    if (problem := _raised(got)) is not None:
        return f"{name}: {problem}"
    if not (isinstance(got, tuple) and len(got) == 2):
        return f"{name}: the test expected your function to return one tensor, got {describe(got)}"
    out, dx = _grad(lambda t: shortcut_a(t, out_channels, stride), x, dout)
    variants = {}
    if out_channels > x.shape[1]:
        variants["the zero channels go AFTER the input's channels (channels 0..C-1 are x)"] = \
            shortcut_a(_t(x), out_channels, stride, "before")
        variants["the zero channels all go after x's channels, not half before and half after"] = \
            shortcut_a(_t(x), out_channels, stride, "both")
    if stride > 1:
        variants["sample rows and columns 0, stride, 2*stride, ... (start at 0, as a padded 3x3 conv does)"] = \
            shortcut_a(_t(x), out_channels, stride, offset=1)
        pooled = F.avg_pool2d(_t(x), stride, ceil_mode=True)
        variants["option A subsamples (x[:, :, ::stride, ::stride]); it does not average"] = \
            F.pad(pooled, (0, 0, 0, 0, 0, out_channels - x.shape[1]))
    return (_compare(got[0], out, f"{name} output", variants)
            or _compare(got[1], dx, f"{name}: gradient with respect to x"))


# ------------------------------------------------------------------------------------------ 2-4. blocks
def _bn(x: torch.Tensor, s: dict, name: str, train: bool) -> torch.Tensor:
    return F.batch_norm(x, s[f"{name}.running_mean"].clone(), s[f"{name}.running_var"].clone(), s[f"{name}.weight"],
                        s[f"{name}.bias"], training=train, momentum=0.1, eps=1e-5)


def residual_block_a(s: dict, x: torch.Tensor, cin: int, cout: int, stride: int, train: bool,
                     mistake: str = "") -> torch.Tensor:
    out = F.relu(_bn(F.conv2d(x, s["conv1.weight"], stride=stride, padding=1), s, "bn1", train))
    out = _bn(F.conv2d(out, s["conv2.weight"], padding=1), s, "bn2", train)
    if mistake == "relu_before_sum":
        return F.relu(out) + shortcut_a(x, cout, stride)
    out = out + shortcut_a(x, cout, stride)
    return out if mistake == "no_final_relu" else F.relu(out)


def preact_block(s: dict, x: torch.Tensor, cin: int, cout: int, stride: int, train: bool,
                 mistake: str = "") -> torch.Tensor:
    a = F.relu(_bn(x, s, "bn1", train))
    out = F.conv2d(F.relu(_bn(F.conv2d(a, s["conv1.weight"], stride=stride, padding=1), s, "bn2", train)),
                   s["conv2.weight"], padding=1)
    return _preact_sum(s, x, a, out, stride, mistake)


def _preact_sum(s: dict, x: torch.Tensor, a: torch.Tensor, out: torch.Tensor, stride: int, mistake: str):
    if "shortcut.weight" in s:
        short = F.conv2d(x if mistake == "project_x" else a, s["shortcut.weight"], stride=stride)
    else:
        short = a if mistake == "identity_a" else x
    out = out + short
    return F.relu(out) if mistake == "final_relu" else out


def preact_bottleneck(s: dict, x: torch.Tensor, cin: int, cout: int, stride: int, train: bool,
                      mistake: str = "", expansion: int = 4) -> torch.Tensor:
    s1, s2 = (stride, 1) if mistake == "stride_on_1x1" else (1, stride)
    a = F.relu(_bn(x, s, "bn1", train))
    out = F.conv2d(a, s["conv1.weight"], stride=s1)
    out = F.conv2d(F.relu(_bn(out, s, "bn2", train)), s["conv2.weight"], stride=s2, padding=1)
    out = F.conv2d(F.relu(_bn(out, s, "bn3", train)), s["conv3.weight"])
    return _preact_sum(s, x, a, out, stride, mistake)


_HINTS = {
    "no_final_relu": "the basic block ends with a ReLU after the sum: ReLU(F(x) + shortcut_a(x))",
    "relu_before_sum": "add the shortcut before the last ReLU: ReLU(F(x) + shortcut), not ReLU(F(x)) + shortcut",
    "final_relu": "a pre-activation block has no ReLU after the sum (that is the point of it)",
    "project_x": "the projection shortcut reads the pre-activated input relu(bn1(x)), not x",
    "identity_a": "the identity shortcut adds x itself, not relu(bn1(x))",
    "stride_on_1x1": "the stride belongs to the 3x3 conv2, not the first 1x1 convolution",
}


def _bn_state(rng: np.random.Generator, s: dict, name: str, channels: int) -> None:
    s[f"{name}.weight"] = rng.uniform(0.5, 1.5, channels)
    s[f"{name}.bias"] = rng.normal(0, 0.2, channels)
    s[f"{name}.running_mean"] = rng.normal(0, 0.2, channels)
    s[f"{name}.running_var"] = rng.uniform(0.5, 2.0, channels)
    s[f"{name}.num_batches_tracked"] = np.array(int(rng.integers(1, 100)))


def _conv_w(rng: np.random.Generator, cout: int, cin: int, k: int) -> np.ndarray:
    return rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))


def _block_state(kind: str, rng: np.random.Generator, cin: int, cout: int, stride: int) -> dict:
    s: dict = {}
    if kind == "residual_block_a":
        s["conv1.weight"] = _conv_w(rng, cout, cin, 3)
        _bn_state(rng, s, "bn1", cout)
        s["conv2.weight"] = _conv_w(rng, cout, cout, 3)
        _bn_state(rng, s, "bn2", cout)
        return s
    _bn_state(rng, s, "bn1", cin)
    if kind == "preact_block":
        s["conv1.weight"] = _conv_w(rng, cout, cin, 3)
        _bn_state(rng, s, "bn2", cout)
        s["conv2.weight"] = _conv_w(rng, cout, cout, 3)
    else:
        width = cout // 4
        s["conv1.weight"] = _conv_w(rng, width, cin, 1)
        _bn_state(rng, s, "bn2", width)
        s["conv2.weight"] = _conv_w(rng, width, width, 3)
        _bn_state(rng, s, "bn3", width)
        s["conv3.weight"] = _conv_w(rng, cout, width, 1)
    if stride != 1 or cin != cout:
        s["shortcut.weight"] = _conv_w(rng, cout, cin, 1)
    return s


_BLOCKS = {"residual_block_a": ("ResidualBlockA", residual_block_a, ["no_final_relu", "relu_before_sum"]),
           "preact_block": ("PreActBlock", preact_block, ["final_relu", "project_x", "identity_a"]),
           "preact_bottleneck": ("PreActBottleneck", preact_bottleneck,
                                 ["final_relu", "project_x", "identity_a", "stride_on_1x1"])}


def _block_cases(kind: str) -> Callable[[np.random.Generator], list[dict]]:
    def cases(rng: np.random.Generator) -> list[dict]:
        out = []
        for stride, same in ((2, False), (1, True), (1, False), (2, False)):
            step = 4 if kind == "preact_bottleneck" else 1
            cin = int(rng.integers(1, 5)) * step * (2 if kind == "preact_bottleneck" else 1)
            cout = cin if same else cin + int(rng.integers(1, 4)) * step
            if kind == "residual_block_a" and not same and stride == 1:
                stride = 2   # option A with stride 1 and more channels is legal; keep the downsampling case common
            size = int(rng.integers(4, 9))
            batch = int(rng.integers(2, 4))
            x = rng.standard_normal((batch, cin, size, size))
            o = -(-size // stride)
            out.append({"args": [[cin, cout, stride], _block_state(kind, rng, cin, cout, stride), x,
                                 rng.standard_normal((batch, cout, o, o))], "kwargs": {}})
        return out
    return cases


def _block_check(kind: str) -> Callable[[dict, Any], str | None]:
    cls, fn, mistakes = _BLOCKS[kind]

    def check(case: dict, got: Any) -> str | None:
        (cin, cout, stride), state, x, dout = case["args"]
        name = f"{cls}({cin}, {cout}, stride={stride}) on x of shape {tuple(x.shape)}"
        if (problem := _raised(got)) is not None:
            hint = (" (the grader loads its weights with load_state_dict: use exactly the attribute names of the "
                    "table)" if "state_dict" in str(got) else "")
            return f"{name}: {problem}{hint}"
        if not isinstance(got, dict) or not {"params", "modules", "eval", "train"} <= set(got):
            return f"{name}: the test could not run your block (got {describe(got)})"
        borrowed = [m for m in got["modules"] if str(m).startswith("cnncourse")]
        if borrowed:
            return f"{name}: built from {borrowed[0]}; build it from torch.nn layers in this notebook"
        want_params = sum(int(np.size(v)) for k, v in state.items()
                          if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        if got["params"] != want_params:
            return (f"{name}: your block has {got['params']:,} parameters, which does not match the specification "
                    f"(check the table: kernel sizes, no bias, which channels each BatchNorm normalises)")
        s = {k: _t(v) for k, v in state.items()}
        for mode in ("eval", "train"):
            train = mode == "train"
            out, dx = _grad(lambda t: fn(s, t, cin, cout, stride, train), x, dout)
            variants = {_HINTS[m]: fn(s, _t(x), cin, cout, stride, train, m).detach() for m in mistakes}
            if mode == "eval":
                variants["in evaluation mode BatchNorm normalises with its running statistics: use nn.BatchNorm2d "
                          "layers (the grader loaded the statistics into them)"] = fn(s, _t(x), cin, cout, stride,
                                                                                      True).detach()
            pair = got[mode]
            if not (isinstance(pair, tuple) and len(pair) == 2):
                return f"{name}, {mode} mode: the test could not run your block (got {describe(pair)})"
            problem = (_compare(pair[0], out, f"{name}, {mode} mode: output", variants)
                       or _compare(pair[1], dx, f"{name}, {mode} mode: gradient with respect to x"))
            if problem:
                return problem
        return None
    return check


# ------------------------------------------------------------------------------------- 5. convolutionalize
def _classifier_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for depth in (3, 1, 2):
        c, h, w = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        widths = [c * h * w] + [int(rng.integers(2, 9)) for _ in range(depth)]
        layers = []
        for i in range(depth):
            layers.append(("linear", rng.normal(0, 0.5, (widths[i + 1], widths[i])), rng.normal(0, 0.5, widths[i + 1])))
            if i < depth - 1:
                layers.append(("relu", None, None))
                if rng.random() < 0.5:
                    layers.append(("dropout", None, None))
        x = rng.standard_normal((int(rng.integers(1, 4)), c, h, w))
        big = rng.standard_normal((1, c, h + int(rng.integers(1, 4)), w + int(rng.integers(1, 4))))
        cases.append({"args": [layers, c, h, w, x, big], "kwargs": {}})
    return cases


def convolutionalized(layers: list, c: int, h: int, w: int, x: torch.Tensor, order: str = "chw") -> torch.Tensor:
    """The classifier as convolutions applied to x (order "hwc": the classic wrong reshape, for the hint)."""
    first = True
    for kind, weight, bias in layers:
        if kind != "linear":
            x = F.relu(x) if kind == "relu" else x
            continue
        W = _t(weight)
        if first:
            W = (W.reshape(-1, c, h, w) if order == "chw" else W.reshape(-1, h, w, c).permute(0, 3, 1, 2))
        else:
            W = W.reshape(*W.shape, 1, 1)
        x = F.conv2d(x, W, _t(bias))
        first = False
    return x


def _classifier_check(case: dict, got: Any) -> str | None:
    layers, c, h, w, x, big = case["args"]
    kinds = ["Conv2d" if k == "linear" else ("ReLU" if k == "relu" else "Dropout") for k, _, _ in layers]
    name = f"convolutionalize(a classifier {kinds_text(layers)} on a {c}x{h}x{w} map, ...)"
    if (problem := _raised(got)) is not None:
        return f"{name}: {problem}"
    if not (isinstance(got, tuple) and len(got) == 3):
        return f"{name}: the test could not run your result (got {describe(got)})"
    if list(got[0]) != kinds:
        return f"{name}: returned the layers {list(got[0])}; each Linear becomes a Conv2d, ReLU and Dropout stay"
    variants = {"the flattened features are ordered (C, H, W): reshape the weight to (out, C, h, w)":
                convolutionalized(layers, c, h, w, _t(x), "hwc")} if h * w > 1 and c > 1 else {}
    return (_compare(got[1], convolutionalized(layers, c, h, w, _t(x)), f"{name}: output on x of shape "
                     f"{tuple(x.shape)}", variants)
            or _compare(got[2], convolutionalized(layers, c, h, w, _t(big)),
                        f"{name}: output on a larger map of shape {tuple(big.shape)} (the classifier slides)"))


def kinds_text(layers: list) -> str:
    return "-".join({"linear": "Linear", "relu": "ReLU", "dropout": "Dropout"}[k] for k, _, _ in layers)


# ----------------------------------------------------------------------------------------- 6. shapes_net
def _key(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()


def _design_cases(rng: np.random.Generator) -> list[dict]:
    val, _ = data.shapes(n=N_VAL, size=32, seed=int(rng.integers(2**62)), val_fraction=0.0, **DESIGN)
    images = val.images.numpy()
    _VAL_LABELS[_key(images)] = val.labels.numpy()
    return [{"args": [int(rng.integers(2**31)), N_TRAIN, DESIGN_EPOCHS, DESIGN_LR, dict(DESIGN), images],
             "kwargs": {}}]


def design_accuracy(case: dict, predictions: np.ndarray) -> float:
    """Accuracy of ``predictions`` on the case's validation images (labels known to the grader only)."""
    labels = _VAL_LABELS[_key(case["args"][-1])]
    return float(np.mean(np.asarray(predictions).reshape(-1) == labels))


def _design_check(case: dict, got: Any) -> str | None:
    name = f"shapes_net trained with the grader's seed on {N_TRAIN} images for {DESIGN_EPOCHS} epochs"
    if (problem := _raised(got)) is not None:
        return f"{name}: {problem}"
    if not (isinstance(got, tuple) and len(got) == 3 and isinstance(got[2], np.ndarray)):
        return f"{name}: the test could not run your network (got {describe(got)})"
    params, macs, predictions = got
    if type(params) is not int or type(macs) is not int:
        return f"{name}: the test could not count your network's parameters and MACs (got {params!r}, {macs!r})"
    if params > PARAM_BUDGET:
        return f"{name}: {params:,} parameters, over the budget of {PARAM_BUDGET:,}"
    if macs > MAC_BUDGET:
        return f"{name}: {macs:,} multiply-accumulates per image, over the budget of {MAC_BUDGET:,}"
    if predictions.shape != (N_VAL,):
        return f"{name}: expected one predicted class per validation image ({N_VAL}), got shape {predictions.shape}"
    acc = design_accuracy(case, predictions)
    if acc < ACCURACY:
        return (f"{name}: validation accuracy {acc:.3f} on {N_VAL} new images, below the required {ACCURACY}.\n"
                "Likely cause: the design learns too slowly in the budget: batch norm after each convolution, "
                "downsampling in stages while the channels grow, and global average pooling before one Linear layer "
                "help most")
    return None


TESTS = {
    "shortcut_a": Test(cases=_shortcut_cases, check=_shortcut_check),
    **{kind: Test(cases=_block_cases(kind), check=_block_check(kind)) for kind in _BLOCKS},
    "convolutionalize": Test(cases=_classifier_cases, check=_classifier_check),
    "shapes_net": Test(cases=_design_cases, check=_design_check),
}
