"""Diagrams of what a convolution does: the sliding window on a padded grid, small arrays with their values
written in, and how the receptive field grows layer by layer."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnncourse.arithmetic import effective_kernel
from cnncourse.plotting.figure import new_figure, to_numpy

__all__ = ["plot_conv_diagram", "plot_grid_values", "plot_receptive_field"]


def _window_origins(n_padded: int, k_eff: int, stride: int) -> list[int]:
    """Start offsets of every window that fits entirely inside the padded input."""
    return list(range(0, n_padded - k_eff + 1, stride)) if n_padded >= k_eff else []


def _grid_axes(ax, size: int, title: str, xlabel: str) -> None:
    """Frame ``ax`` on a ``size x size`` grid of unit cells (row 0 on top, square cells, no ticks)."""
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.set_xlabel(xlabel, fontsize=8)


def plot_conv_diagram(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                      step: int = 0, ax=None, show_output: bool = True):
    """The sliding window of a square convolution (or pooling) on an ``n x n`` input.

    Draws the input grid (blue), the zero-padded border (grey, dashed), the kernel taps of window number
    ``step`` (orange; row-major order) and, to the right, the output grid with the cell that window
    produces. When the windows do not tile the padded input (e.g. 7x7 input, 3x3 kernel, stride 3), the
    leftover column/row that no window can reach is hatched red and the output grid is omitted.

    Returns the Figure; its first axes has the title ``"input"`` and, when valid, the second ``"output"``.
    """
    import matplotlib.patches as mpatches

    for name, v, lo in (("n", n, 1), ("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0),
                        ("dilation", dilation, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    size = n + 2 * padding
    k_eff = effective_kernel(kernel, dilation)
    origins = _window_origins(size, k_eff, stride)
    fits = bool(origins) and (size - k_eff) % stride == 0
    out = len(origins)
    two = show_output and fits
    if ax is None:
        widths = [size, max(out, 1)] if two else [size]
        fig, axes = new_figure(1, len(widths), figsize=(min(11, 3 + 0.35 * sum(widths) + 2), 4),
                               width_ratios=widths)
        axes = list(axes.flat)
    else:
        fig, axes = ax.figure, [ax]
        two = False
    a = axes[0]
    for i in range(size):
        for j in range(size):
            inside = padding <= i < padding + n and padding <= j < padding + n
            a.add_patch(mpatches.Rectangle((j, i), 1, 1, facecolor="#cfe2f3" if inside else "#eeeeee",
                                           edgecolor="#6fa8dc" if inside else "#999999",
                                           ls="-" if inside else "--", lw=0.8))
    if padding:
        a.add_patch(mpatches.Rectangle((padding, padding), n, n, fill=False, edgecolor="#1f4e79", lw=1.8))
    if not fits and size >= k_eff:
        left = (size - k_eff) % stride  # rows/cols the last whole window cannot reach
        for i in range(size):
            for j in range(size - left, size):
                a.add_patch(mpatches.Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="tab:red", lw=0))
                a.add_patch(mpatches.Rectangle((i, j), 1, 1, fill=False, hatch="///", edgecolor="tab:red", lw=0))
    if origins:
        step = int(step) % (out * out)
        r0, c0 = origins[step // out], origins[step % out]
        for ti in range(kernel):
            for tj in range(kernel):
                a.add_patch(mpatches.Rectangle((c0 + tj * dilation + 0.1, r0 + ti * dilation + 0.1), 0.8, 0.8,
                                               facecolor="tab:orange", alpha=0.75, lw=0))
        a.add_patch(mpatches.Rectangle((c0, r0), k_eff, k_eff, fill=False, edgecolor="tab:orange", lw=2.5))
    _grid_axes(a, size, "input", f"{n}x{n} input" + (f" + padding {padding}" if padding else "")
               + f", {kernel}x{kernel} kernel" + (f" dilated by {dilation}" if dilation > 1 else "")
               + f", stride {stride}")
    if two:
        b = axes[1]
        for i in range(out):
            for j in range(out):
                hit = (i, j) == (step // out, step % out)
                b.add_patch(mpatches.Rectangle((j, i), 1, 1, facecolor="tab:orange" if hit else "#d9ead3",
                                               edgecolor="#6aa84f", lw=0.8))
        _grid_axes(b, out, "output", f"{out}x{out} output")
    return fig


def plot_grid_values(arrays: Sequence[Any], titles: Sequence[str] | None = None, highlight=None, marks=None,
                     fmt: str = "{:g}", cmap: str = "Blues", cell: float = 0.45):
    """Small 2-D arrays side by side with their values written in the cells (for pooling and padding
    examples). ``highlight`` and ``marks`` are optional lists (one entry per array, or None) of boolean
    masks: highlighted cells get an orange edge, marked cells a thick red one."""
    import matplotlib.patches as mpatches

    arrs = [to_numpy(a).astype(float) for a in arrays]
    if any(a.ndim != 2 for a in arrs):
        raise ValueError(f"plot_grid_values needs 2-D arrays, got shapes {[a.shape for a in arrs]}")
    widths = [a.shape[1] for a in arrs]
    height = max(a.shape[0] for a in arrs)
    fig, axes = new_figure(1, len(arrs), figsize=(cell * sum(widths) + 0.8 * len(arrs), cell * height + 0.8),
                           width_ratios=widths)
    for k, (ax, a) in enumerate(zip(axes.flat, arrs)):
        ax.imshow(a, cmap=cmap, vmin=min(x.min() for x in arrs), vmax=max(x.max() for x in arrs) * 1.6 or 1)
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                ax.text(j, i, fmt.format(a[i, j]), ha="center", va="center", fontsize=8)
        for masks, color, lw in ((highlight, "tab:orange", 2.0), (marks, "tab:red", 3.0)):
            if masks is not None and masks[k] is not None:
                for i, j in zip(*np.nonzero(to_numpy(masks[k]))):
                    ax.add_patch(mpatches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color, lw=lw))
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    return fig


def plot_receptive_field(layers: Sequence[tuple[int, ...]], n_input: int | None = None,
                         names: Sequence[str] | None = None):
    """A 1-D picture of how the receptive field grows: one row of units per layer (input at the bottom),
    with the units that feed the centre unit of the top layer filled. ``layers``: ``(kernel, stride)`` or
    ``(kernel, stride, dilation)`` per layer, no padding."""
    import matplotlib.patches as mpatches

    specs = [(*spec, 1)[:3] for spec in layers]
    if not specs:
        raise ValueError("layers is empty: pass at least one (kernel, stride) pair")
    jump, reach = 1, 1  # input pixels between neighbouring top units, input pixels one top unit sees
    for k, st, d in specs:
        reach += d * (k - 1) * jump
        jump *= st
    n_input = n_input or reach + 2 * jump
    sizes = [n_input]
    for k, st, d in specs:
        span = sizes[-1] - d * (k - 1)
        if span < 1:
            raise ValueError(f"n_input={n_input} is too small for these layers: pass n_input >= {reach}")
        sizes.append((span - 1) // st + 1)
    fields = [{sizes[-1] // 2}]  # walk down from the top centre unit: the units that feed it, layer by layer
    for k, st, d in reversed(specs):
        fields.append({i * st + d * j for i in fields[-1] for j in range(k)})
    fields.reverse()
    names = list(names) if names is not None else ["input"] + [f"layer {i + 1}" for i in range(len(specs))]
    fig, axes = new_figure(figsize=(max(6.0, 0.32 * n_input), 0.7 * len(sizes) + 0.6))
    ax = axes[0, 0]
    offsets, jumps = [0.0], [1]  # a unit sits above the centre of the input pixels it sees
    for k, st, d in specs:
        offsets.append(offsets[-1] + d * (k - 1) * jumps[-1] / 2)
        jumps.append(jumps[-1] * st)
    for row, (n, field) in enumerate(zip(sizes, fields)):
        for i in range(n):
            ax.add_patch(mpatches.Rectangle((offsets[row] + i * jumps[row], row), 0.9, 0.6, edgecolor="0.4",
                                            facecolor="tab:orange" if i in field else "0.9"))
        ax.text(-0.8, row + 0.3, f"{names[row]}: {len(field)} of {n}", ha="right", va="center", fontsize=8)
    ax.set_xlim(-8, n_input + 0.5)
    ax.set_ylim(-0.3, len(sizes))
    ax.axis("off")
    span = max(fields[0]) - min(fields[0]) + 1
    ax.set_title(f"receptive field of the top centre unit: {span} input pixels", fontsize=10)
    return fig
