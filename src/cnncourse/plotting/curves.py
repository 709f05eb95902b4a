"""Line plots over epochs or steps: learning curves of one run, several runs side by side, any named series."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnncourse.plotting.figure import figure_and_axes, new_figure, to_numpy

__all__ = ["plot_learning_curves", "plot_curves", "plot_history_comparison"]


def _series(history: Any, key: str) -> list:
    """``history[key]`` of a dict or ``history.key`` of a :class:`cnncourse.train.History`; ``[]`` when absent."""
    values = history.get(key) if isinstance(history, dict) else getattr(history, key, None)
    return list(values or [])


def plot_learning_curves(history: Any):
    """Loss and accuracy per epoch from anything with ``train_loss``/``val_loss``/``train_acc``/``val_acc``
    lists (a :class:`cnncourse.train.History` or a dict)."""
    fig, axes = new_figure(1, 2, figsize=(9, 3.2))
    for ax, metric in zip(axes.flat, ("loss", "acc")):
        for split, style in (("train", "-o"), ("val", "--s")):
            ys = _series(history, f"{split}_{metric}")
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
    fig, ax = figure_and_axes(ax, figsize=(5, 3.2))
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
        for ax, metric in zip(axes.flat, metrics):
            for split, style in (("train", "-"), ("val", "--")):
                ys = _series(h, f"{split}_{metric}")
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
