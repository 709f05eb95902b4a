"""The figure every plotting function draws on: :func:`new_figure` (closed in pyplot at once, so a cell shows
it exactly once), :func:`to_numpy` for arrays and tensors, and :func:`figure_and_axes` for functions that can
draw into an axes the caller passes."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["new_figure", "to_numpy", "figure_and_axes"]


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6, 4), **subplot_kw):
    """A constrained-layout Figure and its ``(nrows, ncols)`` array of axes.

    The figure is created through pyplot (so the notebook backend is set up and knows how to render it) and
    closed in pyplot at once: a cell that returns it shows it exactly once, and redrawing an explorer many
    times does not pile figures up in memory.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of an array or torch tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def figure_and_axes(ax=None, figsize=(6, 4)):
    """``(ax.figure, ax)`` when the caller passed ``ax``, otherwise a new one-axes figure of ``figsize``."""
    if ax is None:
        fig, axes = new_figure(figsize=figsize)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    return fig, ax
