"""Figures for the lectures: timelines, image grids, feature maps, filters, confusion matrices,
convolution diagrams and per-layer bar charts.

Every function returns the matplotlib ``Figure`` it drew (so a notebook shows it and a test can inspect
its axes) and accepts NumPy arrays or torch tensors. Figures are closed in pyplot as soon as they are made
(see :func:`new_figure`): a notebook shows the one a cell returns exactly once, and none of them calls
``plt.show()``.
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

__all__ = [
    "Milestone",
    "MILESTONES",
    "to_numpy",
    "new_figure",
    "plot_timeline",
    "plot_images",
    "plot_feature_maps",
    "plot_filters",
    "plot_confusion_matrix",
    "plot_conv_diagram",
    "plot_grid_values",
    "plot_bar_table",
    "plot_learning_curves",
    "plot_curves",
    "plot_history_comparison",
    "plot_receptive_field",
    "plot_applications",
]


class Milestone(NamedTuple):
    """One event on the history timeline."""

    year: int
    name: str
    note: str


MILESTONES: tuple[Milestone, ...] = (
    Milestone(1957, "Perceptron", "Rosenblatt: a trainable linear threshold unit"),
    Milestone(1959, "Hubel & Wiesel", "simple and complex cells in the cat visual cortex"),
    Milestone(1960, "Adaline / Madaline", "Widrow & Hoff: least-mean-squares learning"),
    Milestone(1980, "Neocognitron", "Fukushima: S-cells and C-cells stacked in a hierarchy"),
    Milestone(1986, "Backpropagation", "Rumelhart, Hinton & Williams: training hidden layers"),
    Milestone(1989, "LeCun et al. 1989", "the first CNN trained by backprop: handwritten zip codes"),
    Milestone(1998, "LeNet-5", "LeCun et al.: gradient-based learning, cheque reading"),
    Milestone(2006, "Deep belief nets", "Hinton et al.: layer-wise pre-training revives depth"),
    Milestone(2012, "AlexNet", "Krizhevsky et al.: GPUs + ReLU + dropout win ImageNet"),
    Milestone(2014, "VGG / GoogLeNet", "deeper: stacks of 3x3 convs; Inception modules"),
    Milestone(2015, "ResNet", "He et al.: skip connections train 152 layers"),
)


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


def _figure(ax=None, figsize=(6, 4)):
    if ax is None:
        fig, axes = new_figure(figsize=figsize)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    return fig, ax


# ----------------------------------------------------------------------------------------- history
def plot_timeline(milestones: Iterable[Milestone | tuple[int, str, str]] = MILESTONES, ax=None,
                  highlight: Sequence[str] = ()):
    """A horizontal timeline with one labelled stem per milestone ``(year, name, note)``.

    Labels alternate above and below the axis so neighbouring years stay readable. Names listed in
    ``highlight`` are drawn in red.
    """
    events = sorted((Milestone(*m) for m in milestones), key=lambda m: m.year)
    if not events:
        raise ValueError("milestones is empty: pass at least one (year, name, note) tuple")
    fig, ax = _figure(ax, figsize=(12, 4.5))
    years = [m.year for m in events]
    ax.axhline(0, color="0.3", lw=1.5, zorder=1)
    ax.scatter(years, [0] * len(years), s=40, color="k", zorder=3)
    levels = [(1.0 + 0.45 * (i // 2 % 2)) * (1 if i % 2 == 0 else -1) for i in range(len(events))]
    for m, level in zip(events, levels):
        color = "tab:red" if m.name in highlight else "tab:blue"
        ax.vlines(m.year, 0, level, color=color, lw=1)
        va = "bottom" if level > 0 else "top"
        ax.annotate(f"{m.year}  {m.name}", (m.year, level), ha="center", va=va, fontsize=9, fontweight="bold",
                    color=color)
        ax.annotate(m.note, (m.year, level), xytext=(0, 12 if level > 0 else -12), textcoords="offset points",
                    ha="center", va=va, fontsize=7, color="0.3", wrap=True)
    pad = max(3, (years[-1] - years[0]) // 8)  # room for the notes of the first and last events
    ax.set_xlim(years[0] - pad, years[-1] + pad)
    ax.set_ylim(-2.2, 2.2)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("year")
    ax.set_title("Milestones on the way to convolutional networks")
    return fig


# ----------------------------------------------------------------------------------------- image grids
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
    fig, ax = _figure(ax, figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
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


# ----------------------------------------------------------------------------------------- conv diagrams
def _window_origins(n_padded: int, k_eff: int, stride: int) -> list[int]:
    """Start offsets of every window that fits entirely inside the padded input."""
    return list(range(0, n_padded - k_eff + 1, stride)) if n_padded >= k_eff else []


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
    k_eff = dilation * (kernel - 1) + 1
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
    a.set_xlim(0, size)
    a.set_ylim(size, 0)
    a.set_aspect("equal")
    a.set_xticks([])
    a.set_yticks([])
    a.set_title("input")
    a.set_xlabel(f"{n}x{n} input" + (f" + padding {padding}" if padding else "") + f", {kernel}x{kernel} kernel"
                 + (f" dilated by {dilation}" if dilation > 1 else "") + f", stride {stride}", fontsize=8)
    if two:
        b = axes[1]
        for i in range(out):
            for j in range(out):
                hit = (i, j) == (step // out, step % out)
                b.add_patch(mpatches.Rectangle((j, i), 1, 1, facecolor="tab:orange" if hit else "#d9ead3",
                                               edgecolor="#6aa84f", lw=0.8))
        b.set_xlim(0, out)
        b.set_ylim(out, 0)
        b.set_aspect("equal")
        b.set_xticks([])
        b.set_yticks([])
        b.set_title("output")
        b.set_xlabel(f"{out}x{out} output", fontsize=8)
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


# ----------------------------------------------------------------------------------------- tables, curves
def plot_bar_table(table: Any, columns: Sequence[str] = ("params", "macs"), log: bool = False,
                   skip_zero: bool = True, title: str | None = None):
    """One horizontal bar chart per column of a per-layer table (e.g. parameters and MACs per layer), first
    layer on top; bars are blue for convolutions, orange for linear layers, grey otherwise, and each is
    labelled with its share of the column total.

    Args:
        table: a :class:`cnncourse.arithmetic.LayerTable`, or a list of rows with ``.name`` and the
            column attributes (and optionally ``.type``), or a dict ``{name: {column: value, "type": ...}}``.
        columns: row attributes to chart, one panel each.
        skip_zero: drop layers whose values are all zero (ReLU, pooling, ...).
    """
    from matplotlib.ticker import EngFormatter, MaxNLocator

    if isinstance(table, dict):
        names = list(table)
        types = [table[n].get("type", "") for n in names]
        values = {c: [table[n][c] for n in names] for c in columns}
    else:
        rows = list(table)
        names = [r.name for r in rows]
        types = [getattr(r, "type", "") for r in rows]
        values = {c: [getattr(r, c) for r in rows] for c in columns}
    keep = [i for i in range(len(names)) if not skip_zero or any(values[c][i] for c in columns)]
    if not keep:
        raise ValueError("the table has no non-zero rows to plot")
    names = [names[i] for i in keep]
    colors = ["tab:blue" if "Conv" in types[i] else "tab:orange" if types[i] == "Linear" else "tab:gray" for i in keep]
    labels = {"params": "parameters", "macs": "multiply-accumulates (MACs)", "flops": "FLOPs",
              "pool_ops": "pooling operations"}
    fig, axes = new_figure(1, len(columns), figsize=(4.5 * len(columns), 0.8 + 0.3 * len(names)), sharey=True)
    for ax, c in zip(axes.flat, columns):
        v = [values[c][i] for i in keep]
        ax.barh(range(len(names)), v, color=colors)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel(labels.get(c, c))
        if log:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.xaxis.set_major_locator(MaxNLocator(4))
        total = sum(v) or 1
        for i, x in enumerate(v):
            ax.annotate(f"{100 * x / total:.1f}%", (x, i), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=7)
        ax.margins(x=0.18)
    axes[0, 0].invert_yaxis()  # first layer on top (the axes share y, so invert once)
    if title:
        fig.suptitle(title)
    return fig


def plot_learning_curves(history: Any):
    """Loss and accuracy per epoch from anything with ``train_loss``/``val_loss``/``train_acc``/``val_acc``
    lists (a :class:`cnncourse.train.History` or a dict)."""
    get = (lambda k: history.get(k) or []) if isinstance(history, dict) else (lambda k: getattr(history, k, None) or [])
    fig, axes = new_figure(1, 2, figsize=(9, 3.2))
    for ax, metric in zip(axes.flat, ("loss", "acc")):
        for split, style in (("train", "-o"), ("val", "--s")):
            ys = list(get(f"{split}_{metric}"))
            if ys:
                ax.plot(range(1, len(ys) + 1), ys, style, label=split, ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        if ax.lines:
            ax.legend()
    return fig


def plot_curves(curves: dict[str, Sequence[float]], xlabel: str = "step", ylabel: str = "", title: str | None = None,
                logy: bool = False, x: Sequence[float] | None = None, ax=None):
    """One line per entry of ``curves`` (label -> values), e.g. a loss per step or a statistic per layer."""
    if not curves:
        raise ValueError("curves is empty: pass {label: values}")
    fig, ax = _figure(ax, figsize=(5, 3.2))
    for label, ys in curves.items():
        ys = to_numpy(ys).ravel()
        ax.plot(x if x is not None else np.arange(1, len(ys) + 1), ys, "-o" if len(ys) <= 30 else "-", ms=3,
                label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_history_comparison(histories: dict[str, Any], metrics: Sequence[str] = ("loss", "acc"),
                            title: str | None = None):
    """Learning curves of several runs side by side: one panel per metric, one colour per run, training
    solid and validation dashed. ``histories``: run name -> :class:`cnncourse.train.History` or dict."""
    if not histories:
        raise ValueError("histories is empty: pass {run name: History}")
    fig, axes = new_figure(1, len(metrics), figsize=(4.6 * len(metrics), 3.3))
    for k, (name, h) in enumerate(histories.items()):
        get = (lambda key: h.get(key) or []) if isinstance(h, dict) else (lambda key: getattr(h, key, None) or [])
        for ax, metric in zip(axes.flat, metrics):
            for split, style in (("train", "-"), ("val", "--")):
                ys = list(get(f"{split}_{metric}"))
                if ys:
                    ax.plot(range(1, len(ys) + 1), ys, style, color=f"C{k}", label=f"{name}, {split}")
    for ax, metric in zip(axes.flat, metrics):
        ax.set_xlabel("epoch")
        ax.set_ylabel({"acc": "accuracy"}.get(metric, metric))
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
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
