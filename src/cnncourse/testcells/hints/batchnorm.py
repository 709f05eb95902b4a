"""Recognisers for spatial batch norm: a wrong forward pass (output or running averages) and a wrong ``dx``."""
from __future__ import annotations

from typing import Any

import numpy as np

from cnncourse.testcells.hints._common import _close, _t

__all__ = ["batchnorm_hint", "batchnorm_backward_hint"]


def _normalised(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axes: tuple[int, ...], unbiased: bool,
                eps: float, detach: str = ""):
    """torch: gamma * (x - mean) / sqrt(var + eps) + beta with statistics over ``axes``; ``detach`` names the
    statistics ("mean", "var") that autograd must treat as constants. Returns (out tensor, x tensor)."""
    tx = _t(x).requires_grad_()
    mean, var = tx.mean(dim=axes, keepdim=True), tx.var(dim=axes, keepdim=True, unbiased=unbiased)
    mean = mean.detach() if "mean" in detach else mean
    var = var.detach() if "var" in detach else var
    return _t(gamma).reshape(1, -1, 1, 1) * (tx - mean) / (var + eps).sqrt() + _t(beta).reshape(1, -1, 1, 1), tx


def batchnorm_hint(out: Any, bn_param: dict, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mode: str,
                   old_mean: Any = None, old_var: Any = None) -> str:
    """The likely mistake behind a wrong spatial batch-norm forward pass (``out`` or the running averages in
    ``bn_param`` after the call), or ``""``. ``old_mean``/``old_var``: the running averages before the call
    (``None``: not there yet, i.e. zeros and ones).

    Recognises: statistics per image or per pixel instead of per channel over (N, H, W), the unbiased variance
    used to normalise, the biased variance in ``running_var``, the momentum applied the other way round
    (``momentum * running + (1 - momentum) * batch``), and batch statistics used in test mode.
    """
    import torch.nn.functional as F

    C = x.shape[1]
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    old_mean = np.zeros(C) if old_mean is None else np.asarray(old_mean, dtype=float)
    old_var = np.ones(C) if old_var is None else np.asarray(old_var, dtype=float)
    batch_stats = F.batch_norm(_t(x), None, None, _t(gamma), _t(beta), training=True, eps=eps).numpy()
    if mode == "test":
        if _close(out, batch_stats):
            return "in test mode normalise with bn_param['running_mean'] and ['running_var'], not the batch's statistics"
        return ""
    if type(out) is np.ndarray and out.shape == x.shape and not _close(out, batch_stats):
        wrong = [((2, 3), False, "you normalised each image on its own: batch norm uses one mean and variance per "
                                 "channel over the whole batch, the axes (0, 2, 3)"),
                 ((0,), False, "your statistics are per channel *and pixel*: spatial batch norm averages over N, H "
                               "and W (axes 0, 2, 3), one mean and variance per channel"),
                 ((0, 2, 3), True, "normalise with the biased batch variance (divide by m = N*H*W, np.var's "
                                   "default); the unbiased one is only for running_var")]
        for axes, unbiased, message in wrong:
            if _close(out, _normalised(x, gamma, beta, axes, unbiased, eps)[0].detach().numpy()):
                return message
        return ""
    mean = x.mean(axis=(0, 2, 3))
    biased, unbiased = x.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    new_mean, new_var = bn_param.get("running_mean"), bn_param.get("running_var")
    swapped = ("the momentum is applied the other way round: running = (1 - momentum) * running + momentum * batch, "
               "with momentum = 0.1 as in torch")
    if _close(new_mean, momentum * old_mean + (1 - momentum) * mean):
        return swapped
    if _close(new_var, (1 - momentum) * old_var + momentum * biased):
        return "running_var uses the unbiased batch variance, var * m / (m - 1) with m = N*H*W (lecture 04)"
    if _close(new_var, momentum * old_var + (1 - momentum) * unbiased):
        return swapped
    return ""


def batchnorm_backward_hint(dx: Any, x: np.ndarray, gamma: np.ndarray, dout: np.ndarray, eps: float = 1e-5) -> str:
    """The likely mistake behind a wrong spatial batch-norm ``dx`` (train mode), or ``""``: the batch mean and
    variance treated as constants, or only one of the two paths through them added (autograd with those
    statistics detached recomputes each mistake)."""
    if type(dx) is not np.ndarray or dx.shape != x.shape:
        return ""
    zeros = np.zeros_like(gamma)
    for detach, message in [
            ("mean var", "you treated the batch mean and variance as constants: every input of a channel also moves "
                         "that channel's mean and variance, so dx has two more terms (draw the graph)"),
            ("var", "the path through the mean is there, the one through the variance is missing"),
            ("mean", "the path through the variance is there, the one through the mean is missing")]:
        out, tx = _normalised(x, gamma, zeros, (0, 2, 3), False, eps, detach)
        out.backward(_t(dout))
        if _close(dx, tx.grad.numpy()):
            return message
    return ""
