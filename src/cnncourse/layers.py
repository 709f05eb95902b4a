"""Checks for the inputs of NumPy convolution and pooling layers, with errors that say what is wrong.

CS231n conventions (the ``conv_layers`` assignment's): ``x`` is ``(N, C, H, W)``, conv weights ``w`` are
``(F, C, HH, WW)``, biases ``b`` are ``(F,)``; ``conv_param = {"stride": s, "padding": p}`` (the names of
``torch.nn.Conv2d``) and ``pool_param = {"pool_height": ph, "pool_width": pw,
"stride": s}``, where ``s`` and ``p`` are an int or an ``(h, w)`` pair. Every ``*_forward`` returns
``(out, cache)`` and every ``*_backward(dout, cache)`` returns the gradients with respect to the forward's inputs.

The layers themselves are the assignment: they are not in this package (the instructor's reference lives in
``solutions/conv_layers/``; graders compare with ``torch.nn.functional``). Use these checks on the inputs of a
layer while you debug it, e.g. ``check_conv_args(x, w, b, conv_param)`` before calling your forward pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_conv_args", "check_pool_args"]


def _pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` (int or (h, w) pair) as a pair of ints >= minimum, or ValueError naming ``name``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_4d(name: str, a: Any, axes: str = "(N, C, H, W)") -> None:
    if not isinstance(a, np.ndarray) or a.ndim != 4:
        shape = getattr(a, "shape", type(a).__name__)
        raise ValueError(f"{name} must be a 4-d numpy array {axes}, got {shape}")


def _tiles(name: str, size: int, kernel: int, stride: int) -> None:
    if size < kernel:
        raise ValueError(f"the {name} window ({kernel}) is larger than the (padded) input ({size})")
    if (size - kernel) % stride:
        raise ValueError(f"stride {stride} does not tile the {name}: (padded size {size} - window {kernel}) is not "
                         f"a multiple of {stride}; change the stride or the padding")


def check_conv_args(x: Any, w: Any, b: Any, conv_param: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """Raise ``ValueError`` naming the bad argument unless ``x``, ``w``, ``b`` and ``conv_param`` describe a
    convolution whose windows tile the padded input; return ``((stride_h, stride_w), (padding_h, padding_w))``."""
    _check_4d("x", x)
    _check_4d("w", w, "(F, C, HH, WW)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channels of x and w differ: x has C={x.shape[1]} (x.shape={x.shape}) but w expects "
                         f"C={w.shape[1]} (w.shape={w.shape})")
    if not isinstance(b, np.ndarray) or b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape (F,) = ({w.shape[0]},) to match w.shape={w.shape}, "
                         f"got {getattr(b, 'shape', type(b).__name__)}")
    if not isinstance(conv_param, dict) or {"stride", "padding"} - set(conv_param):
        raise ValueError(f"conv_param must be a dict with the keys 'stride' and 'padding', got {conv_param!r}")
    stride, pad = _pair("stride", conv_param["stride"], 1), _pair("padding", conv_param["padding"], 0)
    for axis, size, kernel, s, p in zip(("height", "width"), x.shape[2:], w.shape[2:], stride, pad):
        _tiles(axis, size + 2 * p, kernel, s)
    return stride, pad


def check_pool_args(x: Any, pool_param: Any) -> tuple[tuple[int, int], int]:
    """Raise ``ValueError`` naming the bad argument unless ``pool_param`` describes a pooling layer whose
    windows tile ``x``; return ``((pool_height, pool_width), stride)``."""
    _check_4d("x", x)
    keys = {"pool_height", "pool_width", "stride"}
    if not isinstance(pool_param, dict) or keys - set(pool_param):
        raise ValueError(f"pool_param must be a dict with the keys {sorted(keys)}, got {pool_param!r}")
    kernel = (_pair("pool_height", pool_param["pool_height"], 1)[0], _pair("pool_width", pool_param["pool_width"], 1)[0])
    stride = _pair("stride", pool_param["stride"], 1)[0]
    for axis, size, k in zip(("height", "width"), x.shape[2:], kernel):
        _tiles(axis, size, k, stride)
    return kernel, stride
