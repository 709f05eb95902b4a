"""Recognisers for pooling: a wrong max- or average-pool ``dx``."""
from __future__ import annotations

from typing import Any

import numpy as np

from cnncourse.testcells.hints._common import _close, _one_writer_each, _t

__all__ = ["pool_backward_hint"]


def pool_backward_hint(kind: str, dx: Any, x: np.ndarray, pool_param: dict, dout: np.ndarray) -> str:
    """The likely mistake behind a wrong pooling ``dx``, or ``""``.

    Max pooling: the gradient sent to every tied maximum (not only the first), to every input of the window, or
    to the wrong position (row and column swapped, or without the window's offset ``i * stride``); average
    pooling: ``dout`` not divided by the window size (or scaled by another factor); both: ``=`` instead of ``+=``
    where windows overlap.
    """
    import torch
    import torch.nn.functional as F

    if kind not in ("max", "avg") or type(dx) is not np.ndarray or dx.shape != x.shape:
        return ""
    kh, kw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    tx = _t(x).requires_grad_()
    pooled = F.max_pool2d(tx, (kh, kw), stride=s) if kind == "max" else F.avg_pool2d(tx, (kh, kw), stride=s)
    pooled.backward(_t(dout))
    true_dx = tx.grad.numpy()
    if _close(dx, true_dx):
        return ""
    cols = F.unfold(_t(x), (kh, kw), stride=s).reshape(N, C, kh * kw, -1)  # every window of every channel
    d = _t(dout).reshape(N, C, 1, -1)

    def back(weights):  # (N, C, kh*kw, L) -> dx with the windows' contributions added up
        return F.fold(weights.reshape(N, C * kh * kw, -1), (H, W), (kh, kw), stride=s).numpy()

    if _close(dx, back(d.expand(-1, -1, kh * kw, -1))):
        if kind == "max":
            return "every input of a window received the gradient: only the maximum (the input that won) gets dout"
        return ("each input of a window contributes 1 / (pool_height * pool_width) of the mean: "
                "divide dout by the window size")
    if kind == "avg":
        ratio = float(np.sum(dx * true_dx) / np.sum(true_dx * true_dx))
        if ratio and _close(dx, ratio * true_dx):
            return (f"your dx is {ratio:.3g} times the right one: each input of a window receives "
                    f"dout / (pool_height * pool_width) = dout / {kh * kw}")
        contributions = d.expand(-1, -1, kh * kw, -1) / (kh * kw)
    else:
        tied = (cols == cols.max(dim=2, keepdim=True).values).double()
        if bool((tied.sum(dim=2) > 1).any()) and _close(dx, back(tied * d)):
            return ("a window with several equal maxima sent the gradient to each of them: give it to one input "
                    "only, the first maximum (np.argmax), as PyTorch does")
        first = torch.zeros_like(cols).scatter_(2, cols.argmax(dim=2, keepdim=True), 1.0)
        contributions = first * d
        if kh == kw:  # (k, l) swapped when turning the argmax into a row and column
            swapped = first.reshape(N, C, kh, kw, -1).transpose(2, 3).reshape(N, C, kh * kw, -1)
            if _close(dx, back(swapped * d)):
                return ("the gradient lands in the wrong place: the row and column of the maximum are swapped; "
                        "np.unravel_index(np.argmax(window), window.shape) gives (row, column)")
        if np.isclose(dx.sum(), true_dx.sum()) and np.allclose(dx.sum(axis=(2, 3)), true_dx.sum(axis=(2, 3))):
            if kh > s or kw > s:
                blocks = [contributions.reshape(N, C * kh * kw, -1)]
                if _one_writer_each(dx, blocks, x.shape, (kh, kw), s, 0):
                    pass  # an overlap mistake, reported below
                else:
                    return ("the gradient lands in the wrong place: window (i, j)'s maximum at (k, l) inside the "
                            "window is input (i * stride + k, j * stride + l)")
            else:
                return ("the gradient lands in the wrong place: window (i, j)'s maximum at (k, l) inside the "
                        "window is input (i * stride + k, j * stride + l)")
    if kh > s or kw > s:
        if _one_writer_each(dx, [contributions.reshape(N, C * kh * kw, -1)], x.shape, (kh, kw), s, 0):
            return ("windows overlap (stride < pool size), so an input can receive gradient from several "
                    "windows: add them up with += instead of =")
    return ""
