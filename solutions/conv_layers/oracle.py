"""Hidden tests of conv_layers: per-student inputs and torch oracles (instructor only, never released).

Loaded by the grader (``cnncourse.grader.cases.load_oracle``). Every expected value is computed here, in the
grader process, with ``torch.nn.functional`` and autograd in float64; the student's kernel only receives the
inputs. Failure messages name the inputs, which output is wrong and where, and -- through
``cnncourse.testcells.hints`` -- the recognised mistake, never an expected value.

The instructor's reference layers are in ``oracle_reference.py`` next to this file (never released either).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnncourse.grader.cases import Test
from cnncourse.testcells import hints
from cnncourse.testcells.compare import describe, mismatch
from cnncourse.testcells.owncode import OwnCode
from cnncourse.testcells.wire import RaisedError

RULES = OwnCode(allowed=("numpy", "math"), forbidden=("torch", "cnncourse"))


# ------------------------------------------------------------------------------------------ helpers
def _t(a: Any, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _shape(a: Any) -> str:
    return "x" + str(tuple(np.shape(a)))


def _compare(got: Any, expected: Any, name: str, hint: Callable[[], str] | None = None) -> str | None:
    """``mismatch`` without expected values, plus ``Likely cause:`` from ``hint`` when it recognises one."""
    if isinstance(got, RaisedError):
        return f"{name}: your code raised {got}"
    message = mismatch(got, expected, name, reveal=False)
    if message and hint is not None:
        try:
            cause = hint()
        except Exception:  # a hint must never hide the failure itself
            cause = ""
        if cause:
            message += f"\nLikely cause: {cause}"
    return message


def _tuple(got: Any, n: int, what: str) -> str | None:
    if isinstance(got, RaisedError):
        return f"{what}: your code raised {got}"
    if type(got) is not tuple or len(got) != n:
        return f"{what}: expected a tuple of {n} arrays, got {describe(got)}"
    return None


def _tiling(rng: np.random.Generator, kernel: int, stride: int, padding: int) -> int:
    """An input side for which the windows tile the padded input, with 1-4 outputs (more when the padding
    is larger than the kernel needs)."""
    out = int(rng.integers(1, 5))
    while (out - 1) * stride + kernel - 2 * padding < 1:
        out += 1
    return (out - 1) * stride + kernel - 2 * padding


# ------------------------------------------------------------------------------------------ pad and conv
def _pad_cases(rng: np.random.Generator) -> list[dict]:
    shapes = [(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
              for _ in range(6)]
    return [{"args": [rng.standard_normal(s), 3 if k == 0 else int(rng.integers(0, 4))]} for k, s in enumerate(shapes)]


def _pad_check(case: dict, got: Any) -> str | None:
    x, p = case["args"]
    return _compare(got, F.pad(_t(x), (p, p, p, p)).numpy(), f"pad({_shape(x)}, {p})")


def _conv_cases(rng: np.random.Generator, n: int = 10) -> list[dict]:
    cases = []
    for k in range(n):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride, padding = (int(rng.integers(1, 4)), int(rng.integers(0, 3))) if k else (1, 1)
        H, W = _tiling(rng, kh, stride, padding), _tiling(rng, kw, stride, padding)
        N, C, Fn = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((Fn, C, kh, kw)), rng.standard_normal(Fn)
        cases.append({"args": [x, w, b, {"stride": stride, "padding": padding}]})
    return cases


def _conv_name(x: np.ndarray, w: np.ndarray, conv_param: dict) -> str:
    return f"{_shape(x)}, w{tuple(w.shape)}, stride={conv_param['stride']}, padding={conv_param['padding']}"


def _conv_forward_check(function: str) -> Callable[[dict, Any], str | None]:
    def check(case: dict, got: Any) -> str | None:
        x, w, b, p = case["args"]
        expected = F.conv2d(_t(x), _t(w), _t(b), stride=p["stride"], padding=p["padding"]).numpy()
        return _compare(got, expected, f"{function} out for {_conv_name(x, w, p)}",
                        lambda: hints.conv_forward_hint(got, x, w, b, p))
    return check


def _conv_backward_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for case in _conv_cases(rng, 8):
        x, w, b, p = case["args"]
        out = F.conv2d(_t(x), _t(w), stride=p["stride"], padding=p["padding"])
        cases.append({"args": [rng.standard_normal(tuple(out.shape)), x, w, b, p]})
    return cases


def _conv_backward_check(case: dict, got: Any) -> str | None:
    dout, x, w, b, p = case["args"]
    where = _conv_name(x, w, p)
    problem = _tuple(got, 3, f"conv_backward_naive for {where} must return (dx, dw, db)")
    if problem:
        return problem
    tx, tw, tb = _t(x, True), _t(w, True), _t(b, True)
    F.conv2d(tx, tw, tb, stride=p["stride"], padding=p["padding"]).backward(_t(dout))
    hint = lambda: hints.conv_backward_hint(*got, x, w, p, dout)  # noqa: E731
    for name, value, tensor in zip(("dx", "dw", "db"), got, (tx, tw, tb)):
        message = _compare(value, tensor.grad.numpy(), f"{name} for {where}", hint)
        if message:
            return message
    return None


# ------------------------------------------------------------------------------------------ pooling
def _pool_cases(rng: np.random.Generator, ties: bool = False) -> list[dict]:
    cases = []
    for k in range(8):
        ph, pw, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        H, W = _tiling(rng, ph, stride, 0), _tiling(rng, pw, stride, 0)
        x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W))
        if ties and k == 0:
            x = np.round(x)  # several equal maxima per window: the first one (row-major) gets the gradient
        cases.append({"args": [x, {"pool_height": ph, "pool_width": pw, "stride": stride}]})
    return cases


def _pool_name(x: np.ndarray, p: dict) -> str:
    return f"{_shape(x)}, {p['pool_height']}x{p['pool_width']} windows, stride {p['stride']}"


def _pool_fn(kind: str) -> Callable:
    return F.max_pool2d if kind == "max" else F.avg_pool2d


def _pool_forward_check(kind: str) -> Callable[[dict, Any], str | None]:
    def check(case: dict, got: Any) -> str | None:
        x, p = case["args"]
        expected = _pool_fn(kind)(_t(x), (p["pool_height"], p["pool_width"]), stride=p["stride"]).numpy()
        return _compare(got, expected, f"{kind}_pool_forward_naive out for {_pool_name(x, p)}")
    return check


def _pool_backward_cases(kind: str) -> Callable[[np.random.Generator], list[dict]]:
    def cases(rng: np.random.Generator) -> list[dict]:
        out = []
        for case in _pool_cases(rng, ties=kind == "max"):
            x, p = case["args"]
            shape = _pool_fn(kind)(_t(x), (p["pool_height"], p["pool_width"]), stride=p["stride"]).shape
            out.append({"args": [rng.standard_normal(tuple(shape)), x, p]})
        return out
    return cases


def _pool_backward_check(kind: str) -> Callable[[dict, Any], str | None]:
    def check(case: dict, got: Any) -> str | None:
        dout, x, p = case["args"]
        tx = _t(x, True)
        _pool_fn(kind)(tx, (p["pool_height"], p["pool_width"]), stride=p["stride"]).backward(_t(dout))
        return _compare(got, tx.grad.numpy(), f"{kind} pooling dx for {_pool_name(x, p)}",
                        lambda: hints.pool_backward_hint(kind, got, x, p, dout))
    return check


# ------------------------------------------------------------------------------------------ batch norm
def _bn_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for k in range(6):
        N, C, H, W = int(rng.integers(2, 5)), int(rng.integers(1, 5)), int(rng.integers(2, 6)), int(rng.integers(2, 6))
        x = rng.uniform(0.5, 3) * rng.standard_normal((N, C, H, W)) + rng.uniform(-2, 2)
        bn_param: dict = {"mode": "train" if k % 3 else "test"}
        if k >= 2 or bn_param["mode"] == "test":  # running averages given (else they start at zeros and ones)
            bn_param["running_mean"] = rng.standard_normal(C)
            bn_param["running_var"] = rng.uniform(0.5, 2, C)
        if k >= 4:
            bn_param["momentum"] = float(rng.choice([0.05, 0.2, 0.5]))
            bn_param["eps"] = float(rng.choice([1e-3, 1e-4]))
        cases.append({"args": [x, rng.standard_normal(C), rng.standard_normal(C), bn_param]})
    return cases


def _bn_forward_check(case: dict, got: Any) -> str | None:
    x, gamma, beta, bn_param = case["args"]
    mode, C = bn_param["mode"], x.shape[1]
    momentum, eps = bn_param.get("momentum", 0.1), bn_param.get("eps", 1e-5)
    old_mean = np.array(bn_param.get("running_mean", np.zeros(C)), dtype=float)
    old_var = np.array(bn_param.get("running_var", np.ones(C)), dtype=float)
    where = (f"{mode}-mode spatial_batchnorm_forward on {_shape(x)}"
             + ("" if "running_mean" in bn_param else " (no running averages yet)")
             + (f", momentum={momentum}, eps={eps}" if "momentum" in bn_param else ""))
    problem = _tuple(got, 3, where)  # the test cell returns (out, running_mean, running_var)
    if problem:
        return problem
    mean, var = torch.tensor(old_mean), torch.tensor(old_var)
    out = F.batch_norm(_t(x), mean, var, _t(gamma), _t(beta), training=mode == "train", momentum=momentum, eps=eps)
    after = dict(bn_param, running_mean=got[1], running_var=got[2])
    hint = lambda: hints.batchnorm_hint(got[0], after, x, gamma, beta, mode, old_mean, old_var)  # noqa: E731
    for name, value, expected in (("out", got[0], out), ("bn_param['running_mean']", got[1], mean),
                                  ("bn_param['running_var']", got[2], var)):
        message = _compare(value, expected.numpy(), f"{name} of {where}", hint)
        if message:
            return message
    return None


def _bn_backward_cases(rng: np.random.Generator) -> list[dict]:
    return [{"args": [rng.standard_normal(x.shape), x, gamma, beta]}
            for x, gamma, beta, _ in (case["args"] for case in _bn_cases(rng)[:4])]


def _bn_backward_check(case: dict, got: Any) -> str | None:
    dout, x, gamma, beta = case["args"]
    where = f"spatial_batchnorm_backward on {_shape(x)}"
    problem = _tuple(got, 3, f"{where} must return (dx, dgamma, dbeta)")
    if problem:
        return problem
    tx, tg, tb = _t(x, True), _t(gamma, True), _t(beta, True)
    F.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5).backward(_t(dout))
    for name, value, tensor in zip(("dx", "dgamma", "dbeta"), got, (tx, tg, tb)):
        hint = (lambda: hints.batchnorm_backward_hint(got[0], x, gamma, dout)) if name == "dx" else None
        message = _compare(value, tensor.grad.numpy(), f"{name} of {where}", hint)
        if message:
            return message
    return None


# ------------------------------------------------------------------------------------------ the convnet
def _net_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for k in range(3):
        N, C = int(rng.integers(2, 5)), int(rng.integers(1, 3))
        H, W = 2 * int(rng.integers(2, 4)), 2 * int(rng.integers(2, 4))
        Fn, k_size, hidden, classes = int(rng.integers(2, 5)), int(rng.choice([1, 3, 5])), int(rng.integers(3, 9)), \
            int(rng.integers(3, 7))
        params = {"W1": 0.5 * rng.standard_normal((Fn, C, k_size, k_size)), "b1": 0.1 * rng.standard_normal(Fn),
                  "W2": 0.5 * rng.standard_normal((Fn * (H // 2) * (W // 2), hidden)), "b2": 0.1 * rng.standard_normal(hidden),
                  "W3": 0.5 * rng.standard_normal((hidden, classes)), "b3": 0.1 * rng.standard_normal(classes)}
        y = rng.integers(0, classes, N).astype(np.float64)
        reg = 0.0 if k == 0 else float(rng.uniform(0.01, 0.5))
        cases.append({"args": [params, rng.standard_normal((N, C, H, W)), y, reg]})
    return cases


def _net_check(case: dict, got: Any) -> str | None:
    params, X, y, reg = case["args"]
    W1 = params["W1"]
    where = (f"ThreeLayerConvNet.loss on X{tuple(X.shape)} with {W1.shape[0]} filters of {W1.shape[2]}x{W1.shape[3]}, "
             f"{params['W2'].shape[1]} hidden units, {params['W3'].shape[1]} classes, reg={reg:.3g}")
    problem = _tuple(got, 2, f"{where} must return (loss, grads)")
    if problem:
        return problem
    loss, grads = got
    t = {k: _t(v, True) for k, v in params.items()}
    pooled = F.max_pool2d(F.relu(F.conv2d(_t(X), t["W1"], t["b1"], padding=(W1.shape[2] - 1) // 2)), 2)
    scores = F.relu(pooled.flatten(1) @ t["W2"] + t["b2"]) @ t["W3"] + t["b3"]
    data_loss = F.cross_entropy(scores, torch.tensor(y.astype(np.int64)))
    expected = data_loss + 0.5 * reg * sum((t[k] ** 2).sum() for k in ("W1", "W2", "W3"))
    expected.backward()
    message = _compare(float(loss) if isinstance(loss, np.ndarray) and loss.shape == () else loss, expected.item(),
                       f"loss of {where}", lambda: "" if reg == 0 else
                       "the loss must include 0.5 * reg * (the sum of the squared entries of W1, W2 and W3)")
    if message:
        return message
    if type(grads) is not dict or set(grads) != set(params):
        return f"grads of {where}: expected a dict with the keys {sorted(params)}, got {describe(grads)}"
    for k in ("W3", "b3", "W2", "b2", "W1", "b1"):
        no_reg = t[k].grad.numpy() - (reg * params[k] if k[0] == "W" else 0)
        message = _compare(grads[k], t[k].grad.numpy(), f"grads['{k}'] of {where}", lambda: (
            "add reg * W to the weight gradients (the derivative of 0.5 * reg * ||W||^2)"
            if k[0] == "W" and reg and isinstance(grads[k], np.ndarray) and grads[k].shape == no_reg.shape
            and np.allclose(grads[k], no_reg) else ""))
        if message:
            return message
    return None


TESTS = {
    "pad": Test(_pad_cases, _pad_check),
    "conv_forward_naive": Test(_conv_cases, _conv_forward_check("conv_forward_naive")),
    "conv_backward_naive": Test(_conv_backward_cases, _conv_backward_check),
    "max_pool_forward_naive": Test(_pool_cases, _pool_forward_check("max")),
    "max_pool_backward_naive": Test(_pool_backward_cases("max"), _pool_backward_check("max")),
    "avg_pool_forward_naive": Test(_pool_cases, _pool_forward_check("avg")),
    "avg_pool_backward_naive": Test(_pool_backward_cases("avg"), _pool_backward_check("avg")),
    "conv_forward_im2col": Test(_conv_cases, _conv_forward_check("conv_forward_im2col")),
    "spatial_batchnorm_forward": Test(_bn_cases, _bn_forward_check),
    "spatial_batchnorm_backward": Test(_bn_backward_cases, _bn_backward_check),
    "three_layer_convnet": Test(_net_cases, _net_check),
}
