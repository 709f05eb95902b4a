"""Reference convolution and pooling layers in NumPy (the oracle-checked answers to ``conv_layers``).

CS231n conventions: ``x`` is ``(N, C, H, W)``, conv weights ``w`` are ``(F, C, HH, WW)``, biases ``b`` are
``(F,)``; ``conv_param = {"stride": s, "pad": p}`` and ``pool_param = {"pool_height": ph, "pool_width": pw,
"stride": s}``, where ``s`` and ``p`` are an int or an ``(h, w)`` pair. Every ``*_forward`` returns
``(out, cache)`` and every ``*_backward(dout, cache)`` returns the gradients of the loss with respect to
the forward's inputs, given ``dout``, the gradient with respect to ``out``.

Like ``torch.nn.functional.conv2d`` these compute a cross-correlation (the kernel is not flipped). Sizes
follow ``H_out = (H + 2 pad - HH) / stride + 1``; a configuration whose windows do not tile the padded
input raises ``ValueError`` (PyTorch silently drops the remainder). Arithmetic happens in the inputs'
floating dtype (float64 in the course).

The ``*_naive`` versions are loops a student can read; ``conv_forward_im2col`` / ``conv_backward_im2col``
gather every receptive field into a matrix (``sliding_window_view``) so that the convolution is a matrix
product per image, with Python loops only over the kernel taps in the backward pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnncourse.arithmetic import conv_output_size, pool_output_size

__all__ = [
    "pad",
    "conv_forward_naive",
    "conv_backward_naive",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "avg_pool_forward_naive",
    "avg_pool_backward_naive",
]

_PAD_MODES = {"constant": "constant", "zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "edge": "edge", "circular": "wrap", "wrap": "wrap"}


def _pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` (int or (h, w) pair) as a pair of ints >= minimum, or ValueError naming ``name``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_4d(name: str, a: Any) -> None:
    if not isinstance(a, np.ndarray) or a.ndim != 4:
        shape = getattr(a, "shape", type(a).__name__)
        raise ValueError(f"{name} must be a 4-d numpy array (N, C, H, W), got {shape}")


def _conv_setup(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict):
    """Validate a convolution's inputs; return ((sh, sw), (ph, pw), (H_out, W_out))."""
    _check_4d("x", x)
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        raise ValueError(f"w must be a 4-d numpy array (F, C, HH, WW), got {getattr(w, 'shape', type(w).__name__)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channels of x and w differ: x has C={x.shape[1]} (x.shape={x.shape}) but w expects "
                         f"C={w.shape[1]} (w.shape={w.shape})")
    if not isinstance(b, np.ndarray) or b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape (F,) = ({w.shape[0]},) to match w.shape={w.shape}, "
                         f"got {getattr(b, 'shape', type(b).__name__)}")
    missing = {"stride", "pad"} - set(conv_param)
    if missing:
        raise ValueError(f"conv_param needs the keys 'stride' and 'pad', missing {sorted(missing)}")
    stride, padding = _pair("stride", conv_param["stride"], 1), _pair("pad", conv_param["pad"], 0)
    out_hw = conv_output_size(x.shape[2:], w.shape[2:], stride, padding)
    return stride, padding, out_hw


def _pool_setup(x: np.ndarray, pool_param: dict):
    """Validate a pooling layer's inputs; return ((kh, kw), (sh, sw), (H_out, W_out))."""
    _check_4d("x", x)
    missing = {"pool_height", "pool_width", "stride"} - set(pool_param)
    if missing:
        raise ValueError(f"pool_param needs the keys 'pool_height', 'pool_width' and 'stride', missing {sorted(missing)}")
    kernel = (_pair("pool_height", pool_param["pool_height"], 1)[0], _pair("pool_width", pool_param["pool_width"], 1)[0])
    stride = _pair("stride", pool_param["stride"], 1)
    return kernel, stride, pool_output_size(x.shape[2:], kernel, stride)


def _float(*arrays: np.ndarray) -> type:
    return np.result_type(*arrays, np.float32)


def pad(x: np.ndarray, pad: Any, mode: str = "constant") -> np.ndarray:
    """Pad the two spatial axes of ``x: (N, C, H, W)`` by ``pad`` pixels on each side.

    ``pad``: int or ``(ph, pw)``. ``mode``: ``"constant"`` (zeros, as ``conv2d``'s ``padding``), ``"reflect"``,
    ``"replicate"`` or ``"circular"`` (``torch.nn.Conv2d``'s ``padding_mode`` names; NumPy's ``"edge"`` and
    ``"wrap"`` are accepted too). Returns ``(N, C, H + 2 ph, W + 2 pw)``; batch and channel axes are never padded.
    """
    _check_4d("x", x)
    ph, pw = _pair("pad", pad, 0)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    if mode == "reflect" and (ph >= x.shape[2] or pw >= x.shape[3]):
        raise ValueError(f"reflect padding must be smaller than the input: pad={pad!r}, H, W = {x.shape[2:]}")
    if _PAD_MODES[mode] != "constant":
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=_PAD_MODES[mode])
    out = np.zeros(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), dtype=x.dtype)  # 4x faster than np.pad
    out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    return out


def conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict):
    """Convolution forward pass with explicit loops.

    Inputs: ``x: (N, C, H, W)``, ``w: (F, C, HH, WW)``, ``b: (F,)``, ``conv_param = {"stride", "pad"}``.
    Returns ``(out, cache)``: ``out: (N, F, H_out, W_out)`` with ``out[n, f, i, j] = sum(window * w[f]) + b[f]``,
    the window being ``x_padded[n, :, i*sh : i*sh+HH, j*sw : j*sw+WW]``; ``cache = (x, w, b, conv_param)``.
    """
    (sh, sw), (ph, pw), (H_out, W_out) = _conv_setup(x, w, b, conv_param)
    N, F, (HH, WW) = x.shape[0], w.shape[0], w.shape[2:]
    xp = pad(x, (ph, pw))
    out = np.zeros((N, F, H_out, W_out), dtype=_float(x, w, b))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * sh:i * sh + HH, j * sw:j * sw + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout: np.ndarray, cache: tuple):
    """Convolution backward pass with explicit loops.

    Inputs: ``dout: (N, F, H_out, W_out)``, ``cache`` from :func:`conv_forward_naive`.
    Returns ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``b``: each output entry sends
    ``dout * w[f]`` back to its window of ``x`` and ``dout * window`` to ``w[f]``; ``db`` sums ``dout``.
    """
    x, w, b, conv_param = cache
    (sh, sw), (ph, pw), (H_out, W_out) = _conv_setup(x, w, b, conv_param)
    N, F, (HH, WW) = x.shape[0], w.shape[0], w.shape[2:]
    if dout.shape != (N, F, H_out, W_out):
        raise ValueError(f"dout must have the shape of out, {(N, F, H_out, W_out)}, got {dout.shape}")
    xp = pad(x, (ph, pw))
    dxp, dw = np.zeros_like(xp, dtype=_float(x, dout)), np.zeros_like(w, dtype=_float(w, dout))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = slice(i * sh, i * sh + HH), slice(j * sw, j * sw + WW)
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
    db = dout.sum(axis=(0, 2, 3))
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw, db


def _windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """A read-only view ``(N, C, H_out, W_out, HH, WW)`` of every receptive field of ``xp`` (no copy)."""
    view = sliding_window_view(xp, kernel, axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1]]


def conv_forward_im2col(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict):
    """Vectorised convolution forward pass: gather the receptive fields into matrices and multiply.

    Same inputs and ``out`` as :func:`conv_forward_naive`. For each image the column matrix has one row per
    weight position and one column per output pixel, ``cols: (N, C * HH * WW, H_out * W_out)``, so that
    ``out[n] = w.reshape(F, -1) @ cols[n] + b`` lands directly in ``(F, H_out, W_out)`` order (no transpose
    of the output). Returns ``(out, cache)`` with ``cache = (x, w, b, conv_param, cols)``.
    """
    stride, (ph, pw), (H_out, W_out) = _conv_setup(x, w, b, conv_param)
    N, F = x.shape[0], w.shape[0]
    dtype = _float(x, w, b)
    windows = _windows(pad(x, (ph, pw)).astype(dtype, copy=False), w.shape[2:], stride)  # (N, C, Ho, Wo, HH, WW)
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, -1, H_out * W_out)  # the one copy
    out = np.matmul(w.reshape(F, -1).astype(dtype, copy=False), cols)  # (N, F, Ho * Wo)
    out += b.astype(dtype, copy=False)[:, None]
    return out.reshape(N, F, H_out, W_out), (x, w, b, conv_param, cols)


def conv_backward_im2col(dout: np.ndarray, cache: tuple):
    """Vectorised convolution backward pass (``cache`` from :func:`conv_forward_im2col`).

    ``dw`` and the column gradient are matrix products; ``col2im`` then adds each kernel tap's gradients
    back into the padded input with one strided slice per tap (``HH * WW`` iterations, not one per pixel).
    Returns ``(dx, dw, db)``.
    """
    x, w, b, conv_param, cols = cache
    (sh, sw), (ph, pw), (H_out, W_out) = _conv_setup(x, w, b, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    if dout.shape != (N, F, H_out, W_out):
        raise ValueError(f"dout must have the shape of out, {(N, F, H_out, W_out)}, got {dout.shape}")
    dout_mat = dout.reshape(N, F, H_out * W_out)
    db = dout.sum(axis=(0, 2, 3))
    dw = np.tensordot(dout_mat, cols, axes=([0, 2], [0, 2])).reshape(w.shape)  # sum over images and pixels
    dcols = np.matmul(w.reshape(F, -1).T, dout_mat).reshape(N, C, HH, WW, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dcols.dtype)
    for k in range(HH):
        for l in range(WW):
            dxp[:, :, k:k + sh * H_out:sh, l:l + sw * W_out:sw] += dcols[:, :, k, l]
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, db


def max_pool_forward_naive(x: np.ndarray, pool_param: dict):
    """Max pooling forward pass.

    Inputs: ``x: (N, C, H, W)``, ``pool_param = {"pool_height", "pool_width", "stride"}`` (no padding).
    Returns ``(out, cache)``: ``out: (N, C, H_out, W_out)``, the max of each window; ``cache = (x, pool_param)``.
    """
    (kh, kw), (sh, sw), (H_out, W_out) = _pool_setup(x, pool_param)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=_float(x))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: tuple):
    """Max pooling backward pass: each window's gradient goes to its (first) maximum only, as in PyTorch.

    Inputs: ``dout: (N, C, H_out, W_out)``, ``cache`` from :func:`max_pool_forward_naive`. Returns ``dx``
    with the shape of ``x`` (overlapping windows add up).
    """
    x, pool_param = cache
    (kh, kw), (sh, sw), (H_out, W_out) = _pool_setup(x, pool_param)
    N, C = x.shape[:2]
    dx = np.zeros_like(x, dtype=_float(x, dout))
    n_idx, c_idx = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(N, C, -1)
            k = window.argmax(axis=2)  # (N, C): row-major position of the first maximum
            dx[n_idx, c_idx, i * sh + k // kw, j * sw + k % kw] += dout[:, :, i, j]
    return dx


def avg_pool_forward_naive(x: np.ndarray, pool_param: dict):
    """Average pooling forward pass: the mean of each window. Same inputs, output and cache as max pooling."""
    (kh, kw), (sh, sw), (H_out, W_out) = _pool_setup(x, pool_param)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=_float(x))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    return out, (x, pool_param)


def avg_pool_backward_naive(dout: np.ndarray, cache: tuple):
    """Average pooling backward pass: every pixel of a window receives ``dout / (pool_height * pool_width)``."""
    x, pool_param = cache
    (kh, kw), (sh, sw), (H_out, W_out) = _pool_setup(x, pool_param)
    dx = np.zeros_like(x, dtype=_float(x, dout))
    for i in range(H_out):
        for j in range(W_out):
            dx[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[:, :, i, j, None, None] / (kh * kw)
    return dx
