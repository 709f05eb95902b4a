"""What the recognisers share: closeness on NumPy answers, the int stride and padding of a parameter dict,
float64 tensors, and the test for ``=`` where ``+=`` was needed (used by the conv and pool recognisers)."""
from __future__ import annotations

from typing import Any

import numpy as np


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
