"""Pictures drawn with ``imshow``: image grids, feature maps, filters, a confusion matrix and the
classification / detection / segmentation panels of lecture 01."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnncourse.plotting.figure import figure_and_axes, new_figure, to_numpy

__all__ = ["plot_images", "plot_feature_maps", "plot_filters", "plot_confusion_matrix", "plot_applications"]


def _grid(n: int, ncols: int, cell: float = 1.6, title: str | None = None):
    if n < 1:
        raise ValueError("nothing to plot: got 0 images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(cell * ncols, cell * nrows + (0.4 if title else 0)))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, axes.flat[:n]


def _as_image(img: np.ndarray) -> np.ndarray:
    """(C, H, W) with C in {1, 3} or (H, W) -> something ``imshow`` accepts."""
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3:  # RGB: rescale to [0, 1] so imshow does not clip
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def plot_images(images: Any, titles: Sequence[str] | None = None, ncols: int = 8, cmap: str = "gray",
                title: str | None = None, cell: float = 1.6, vmin=None, vmax=None):
    """A grid of images: ``(N, H, W)``, ``(N, C, H, W)`` (C = 1 or 3) or a list of such arrays."""
    imgs = [to_numpy(im) for im in images]
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"got {len(imgs)} images but {len(titles)} titles")
    fig, axes = _grid(len(imgs), ncols, cell, title)
    for i, (ax, im) in enumerate(zip(axes, imgs)):
        ax.imshow(_as_image(im), cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return fig


def plot_feature_maps(maps: Any, max_maps: int = 32, ncols: int = 8, cmap: str = "viridis",
                      title: str | None = "feature maps"):
    """The activation maps of one image: ``(C, H, W)`` or ``(1, C, H, W)``; one panel per channel,
    each with its own colour scale, titled with its channel index."""
    a = to_numpy(maps)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"pass the maps of one image, shape (C, H, W) or (1, C, H, W); got {a.shape}")
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"feature maps must have shape (C, H, W), got {a.shape}")
    a = a[:max_maps]
    fig, axes = _grid(len(a), ncols, 1.4, title)
    for c, (ax, m) in enumerate(zip(axes, a)):
        ax.imshow(m, cmap=cmap)
        ax.set_title(f"ch {c}", fontsize=8)
    return fig


def plot_filters(weights: Any, max_filters: int = 64, ncols: int = 8, title: str | None = "filters"):
    """Convolution filters ``(F, C, kh, kw)``: RGB pictures when C = 3, otherwise channel 0 in grey
    (signed values: white positive, black negative, grey zero)."""
    w = to_numpy(weights)
    if w.ndim != 4:
        raise ValueError(f"filters must have shape (F, C, kh, kw), got {w.shape}")
    w = w[:max_filters]
    fig, axes = _grid(len(w), ncols, 1.0, title)
    for f, (ax, k) in enumerate(zip(axes, w)):
        if k.shape[0] == 3:
            ax.imshow(_as_image(k), interpolation="nearest")
        else:
            lim = float(np.abs(k[0]).max()) or 1.0
            ax.imshow(k[0], cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(str(f), fontsize=7)
    return fig


def plot_confusion_matrix(cm: Any, classes: Sequence[str] | None = None, normalize: bool = False, ax=None,
                          title: str = "confusion matrix"):
    """A confusion matrix (rows: true class, columns: predicted), with counts (or row fractions when
    ``normalize``) written in the cells."""
    m = to_numpy(cm).astype(float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = m.shape[0]
    classes = list(classes) if classes is not None else [str(i) for i in range(k)]
    if len(classes) != k:
        raise ValueError(f"{k} classes in the matrix but {len(classes)} names")
    fig, ax = figure_and_axes(ax, figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                txt = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    return fig


def plot_applications(image: Any, label: str, boxes: Sequence[tuple[str, int, int, int, int]], mask: Any):
    """What CNNs are used for, on one image: classification (one label), detection (labelled boxes
    ``(name, row0, col0, row1, col1)``, inclusive) and segmentation (an integer mask, 0 = background)."""
    import matplotlib.patches as mpatches

    img = _as_image(to_numpy(image))
    m = to_numpy(mask)
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask has shape {m.shape} but the image is {img.shape[:2]}: they must match")
    fig, axes = new_figure(1, 3, figsize=(9, 3.3))
    for ax, t in zip(axes.flat, ("classification", "detection", "segmentation")):
        ax.imshow(img, cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(t, fontsize=10)
    axes[0, 0].set_xlabel(f"\"{label}\"", fontsize=10)
    for k, (name, r0, c0, r1, c1) in enumerate(boxes):
        axes[0, 1].add_patch(mpatches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                                edgecolor=f"C{k + 1}", lw=2))
        axes[0, 1].text(c0, r0 - 1, name, color=f"C{k + 1}", fontsize=8, va="bottom")
    axes[0, 2].imshow(np.ma.masked_equal(m, 0), cmap="tab10", alpha=0.6, vmin=0, vmax=9, interpolation="nearest")
    return fig
