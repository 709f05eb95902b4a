"""Likely causes for visible test messages: recognise the classic mistakes in convolution and pooling layers.

Each ``*_hint`` function takes the student's (wrong) answer and the test's inputs and returns one sentence naming
the mistake, or ``""`` when none is recognised. A test cell passes it to ``assert_close(..., hint=lambda: ...)``
so that the hint is computed only on failure.

The recognisers never implement the graded layers in NumPy: they rebuild each *mistaken* answer from torch
(``conv2d`` with a flipped kernel, ``unfold``/``fold`` to look at every window) and compare. Nothing here prints.

Recognised: a flipped or transposed kernel, a missing bias, ``+1`` or stride in the output size, windows that step
by the wrong amount; ``=`` instead of ``+=`` where windows or filters overlap (``dx`` and ``dw``), ``dw`` not summed
over the batch, ``db`` summed over the wrong axes, padding not cropped from ``dx``; max-pool gradients sent to every
tied maximum, to every input or to the wrong position; average-pool gradients not divided by the window size.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["conv_forward_hint", "conv_backward_hint", "pool_backward_hint", "batchnorm_hint", "batchnorm_backward_hint"]


def _close(a: Any, b: Any) -> bool:
    b = np.asarray(b)
    return type(a) is np.ndarray and a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-8))


def _ints(conv_param: dict) -> tuple[int, int] | None:
    """(stride, padding) when both are plain ints (the notebook's form; the padding key is ``"padding"``, or
    CS231n's ``"pad"``)."""
    s, p = conv_param.get("stride"), conv_param.get("padding", conv_param.get("pad"))
    if isinstance(s, (int, np.integer)) and isinstance(p, (int, np.integer)):
        return int(s), int(p)
    return None


def _t(a: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ------------------------------------------------------------------------------------------ forward pass
def _windows_at(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pad: int, step: int, offset: int,
                out_hw: tuple[int, int]) -> np.ndarray | None:
    """Cross-correlation whose window (i, j) starts at (i * step + offset, j * step + offset) of the padded
    input, cropped to ``out_hw`` (None when the windows do not fit)."""
    import torch.nn.functional as F

    xp = F.pad(_t(x), (pad, pad, pad, pad))[:, :, offset:, offset:]
    kh, kw = w.shape[2:]
    if step == 0:  # every window at the same place
        if xp.shape[2] < kh or xp.shape[3] < kw:
            return None
        one = F.conv2d(xp[:, :, :kh, :kw], _t(w), None if b is None else _t(b))
        return one.expand(-1, -1, *out_hw).numpy()
    if xp.shape[2] < kh or xp.shape[3] < kw:
        return None
    out = F.conv2d(xp, _t(w), None if b is None else _t(b), stride=step)
    if out.shape[2] < out_hw[0] or out.shape[3] < out_hw[1]:
        return None
    return out[:, :, :out_hw[0], :out_hw[1]].numpy()


def conv_forward_hint(out: Any, x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict) -> str:
    """The likely mistake behind a wrong ``conv_forward_naive`` output, or ``""`` when none is recognised.

    Recognises: a missing ``+1`` or stride in the output size, missing padding, a kernel flipped by 180
    degrees (true convolution instead of the cross-correlation that CNN layers compute), a transposed
    kernel, a missing bias, windows over the unpadded input, and windows that step by ``stride - 1`` pixels,
    1 pixel, or start one pixel late.
    """
    sp = _ints(conv_param)
    if type(out) is not np.ndarray or sp is None:
        return ""
    s, p = sp
    (N, C, H, W), (F, _, HH, WW) = x.shape, w.shape
    H_out, W_out = (H + 2 * p - HH) // s + 1, (W + 2 * p - WW) // s + 1
    want = (N, F, H_out, W_out)
    if out.shape != want:
        got = out.shape[2:] if out.ndim == 4 else None
        if out.ndim == 4 and out.shape[:2] != (N, F):
            return f"out must be (N, F, H_out, W_out) = {want}: one map per image and per filter"
        short = "one row and column short: H_out = (H + 2*pad - HH) // stride + 1 (did you forget the +1?)"
        if p and got == ((H - HH) // s + 1, (W - WW) // s + 1):
            unpadded = "the output has the size of an unpadded input: pad x by conv_param['padding'] on every side first"
            return unpadded + (f"; or {short}" if got == (H_out - 1, W_out - 1) else "")
        if got == (H_out - 1, W_out - 1):
            return short
        if got == (H + 2 * p - HH + 1, W + 2 * p - WW + 1):
            return "the output size ignores the stride: H_out = (H + 2*pad - HH) // stride + 1"
        return ""
    hw = (H_out, W_out)
    candidates = [
        (lambda: _windows_at(x, w[:, :, ::-1, ::-1].copy(), b, p, s, 0, hw),
         "your output is a true convolution, with the kernel rotated by 180 degrees. CNN layers (and "
         "torch.nn.functional.conv2d) compute a cross-correlation: multiply each window by w[f] as it is, "
         "without flipping it"),
        (lambda: _windows_at(x, w.transpose(0, 1, 3, 2).copy(), b, p, s, 0, hw) if HH == WW else None,
         "the kernel is transposed (rows and columns swapped): index windows as x[n, :, rows, cols] and "
         "multiply by w[f] in its (C, HH, WW) order"),
        (lambda: _windows_at(x, w, None, p, s, 0, hw), "the bias is missing: add b[f] to every output of filter f"),
        (lambda: _windows_at(x, w, b, p, s - 1, 0, hw),
         f"off by one in the stride: window i must start at row i * stride = {s} * i, yours step by {s - 1}"),
        (lambda: _windows_at(x, w, b, p, 1, 0, hw) if s > 2 else None,
         "the windows move by 1 pixel instead of by the stride: window (i, j) starts at (i * stride, j * stride)"),
        (lambda: _windows_at(x, w, b, p, s, 1, hw),
         "off by one: your windows start one pixel late; window i covers rows i*stride to i*stride + HH - 1"),
    ]
    for make, message in candidates:
        if _close(out, make()):
            return message
    if p > 0 and H >= HH and W >= WW:  # windows over the unpadded x: right where they fit inside it
        valid = _windows_at(x, w, b, 0, s, 0, ((H - HH) // s + 1, (W - WW) // s + 1))
        if valid is not None and _close(out[:, :, :valid.shape[2], :valid.shape[3]], valid):
            return ("your windows slide over the unpadded x: pad x by conv_param['padding'] on every side first "
                    "and take the windows from the padded array")
    return ""


# ------------------------------------------------------------------------------------------ backward pass
def _grads(x: np.ndarray, w: np.ndarray, dout: np.ndarray, s: int, p: int):
    """Autograd's (dx, dw) of sum(conv2d(x, w) * dout) as numpy arrays."""
    import torch
    import torch.nn.functional as F

    tx, tw = _t(x).requires_grad_(), _t(w).requires_grad_()
    F.conv2d(tx, tw, stride=s, padding=p).backward(_t(dout))
    return tx.grad.numpy(), tw.grad.numpy()


def _one_writer_each(got: np.ndarray, blocks, shape: tuple[int, ...], kernel, stride: int, pad: int) -> bool:
    """True when every entry of ``got`` (shape ``shape``) equals the contribution of ONE window covering it
    (or is 0 where no window writes): the signature of ``=`` where ``+=`` was needed.

    ``blocks``: contributions in ``unfold`` layout, ``(K, N, C*kh*kw, L)`` for K writers (filters) per window.
    """
    import torch
    import torch.nn.functional as F

    mine = F.unfold(_t(got), kernel, padding=pad, stride=stride)  # (N, C*kh*kw, L): got seen through each window
    hit = torch.zeros_like(mine, dtype=torch.bool)
    for block in blocks:
        hit |= torch.isclose(mine, block, rtol=1e-6, atol=1e-8)
    covered = F.fold(torch.ones_like(mine), shape[2:], kernel, padding=pad, stride=stride) > 0
    matched = F.fold(hit.double(), shape[2:], kernel, padding=pad, stride=stride) > 0
    zero_elsewhere = torch.all(torch.isclose(_t(got)[~covered], torch.zeros((), dtype=torch.float64)))
    return bool(torch.all(matched | ~covered)) and bool(zero_elsewhere)


def _db_hint(db: Any, dout: np.ndarray) -> str:
    F = dout.shape[1]
    if type(db) is not np.ndarray:
        return ""
    if db.shape != (F,):
        kept = [a for a in range(4) if dout.shape[a] in db.shape]
        return (f"db must have shape (F,) = ({F},): sum dout over the image, row and column axes (0, 2, 3) and keep "
                f"the filter axis 1; yours has shape {db.shape}" + (" (summed over the wrong axes)" if kept else ""))
    if _close(db, dout[-1].sum(axis=(1, 2))) or _close(db, dout[0].sum(axis=(1, 2))):
        return "db only counts one image: the bias is shared by all N images, so add up their gradients (+=)"
    if _close(db, dout.sum(axis=(0, 2, 3)) / dout.shape[0]):
        return "db is averaged over the images: the loss is a sum, so add the N images' gradients (no / N)"
    return ""


def conv_backward_hint(dx: Any, dw: Any, db: Any, x: np.ndarray, w: np.ndarray, conv_param: dict,
                       dout: np.ndarray) -> str:
    """The likely mistake behind wrong convolution gradients, or ``""``.

    Recognises: ``dx`` with the padded shape (padding not cropped), ``db`` summed over the wrong axes or over one
    image, ``dw`` from one image only or averaged over the batch, and ``=`` instead of ``+=`` in ``dx`` or ``dw``
    (each entry holds one window's contribution instead of the sum over all overlapping windows and filters).
    """
    import torch
    import torch.nn.functional as F

    sp = _ints(conv_param)
    if sp is None or not isinstance(dout, np.ndarray) or dout.ndim != 4:
        return ""
    s, p = sp
    (N, C, H, W), (n_filters, _, HH, WW) = x.shape, w.shape
    if type(dx) is np.ndarray and p > 0 and dx.shape == (N, C, H + 2 * p, W + 2 * p):
        return ("dx has the shape of the padded input: crop the padding off, "
                "dx = dx_padded[:, :, P:P + H, P:P + W]")
    hint = _db_hint(db, dout)
    if hint:
        return hint
    true_dx, true_dw = _grads(x, w, dout, s, p)
    if type(dx) is np.ndarray and dx.shape == x.shape and p > 0 and not _close(dx, true_dx):
        xp = F.pad(_t(x), (p, p, p, p)).requires_grad_()
        F.conv2d(xp, _t(w), stride=s).backward(_t(dout))
        uncropped = xp.grad  # the gradient of the padded input, cropped at the wrong place below
        if _close(dx, uncropped[:, :, :H, :W].numpy()) or _close(dx, uncropped[:, :, 2 * p:, 2 * p:].numpy()):
            return "dx is cropped at the wrong place: the padding is pad pixels on each side, dx = dx_padded[:, :, P:P + H, P:P + W]"
    if type(dw) is np.ndarray and dw.shape == w.shape and not _close(dw, true_dw):
        per_image = [_grads(x[n:n + 1], w, dout[n:n + 1], s, p)[1] for n in range(N)]
        if N > 1 and (_close(dw, per_image[-1]) or _close(dw, per_image[0])):
            return "dw only counts one image: the filters are shared by all N images, so accumulate with += over the batch"
        if N > 1 and _close(dw, true_dw / N):
            return "dw is averaged over the images: the loss is a sum, so add the N images' gradients (no / N)"
        cols = F.unfold(_t(x), (HH, WW), padding=p, stride=s)  # (N, C*HH*WW, L): every window of x
        contributions = (_t(dout).reshape(N, n_filters, 1, -1) * cols[:, None]).permute(1, 0, 3, 2)  # (F, N, L, K)
        single = torch.isclose(contributions.reshape(n_filters, -1, cols.shape[1]),
                               _t(dw).reshape(n_filters, 1, -1), rtol=1e-6, atol=1e-8).all(dim=2).any(dim=1)
        if bool(single.all()):
            return ("dw[f] holds the contribution of a single window: every window of every image adds to the "
                    "shared filter, so use dw[f] += ... instead of =")
    if type(dx) is np.ndarray and dx.shape == x.shape and not _close(dx, true_dx):
        wf = _t(w).reshape(n_filters, -1)  # (F, C*HH*WW)
        blocks = [wf[f][None, :, None] * _t(dout)[:, f].reshape(N, 1, -1) for f in range(n_filters)]
        if _one_writer_each(dx, blocks, x.shape, (HH, WW), s, p):
            return ("each entry of dx holds the gradient of only one window: where windows overlap (stride < "
                    "kernel) and across the F filters, the gradients add up, so use dx_pad[...] += ... instead of =")
    return ""


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


# ------------------------------------------------------------------------------------------ batch norm
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
