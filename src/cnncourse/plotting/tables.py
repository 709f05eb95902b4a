"""Per-layer tables as bar charts (parameters, MACs, FLOPs per layer)."""
from __future__ import annotations

from typing import Any, Sequence

from cnncourse.plotting.figure import new_figure

__all__ = ["plot_bar_table"]


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
