"""Recognisers for convolution: a wrong ``conv_forward_naive`` output and wrong ``conv_backward_naive``
gradients."""
from __future__ import annotations

from typing import Any

import numpy as np

from cnncourse.testcells.hints._common import _close, _ints, _one_writer_each, _t

__all__ = ["conv_forward_hint", "conv_backward_hint"]


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
