"""Lecture 01's timeline: the milestones on the way to convolutional networks."""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

from cnncourse.plotting.figure import figure_and_axes

__all__ = ["Milestone", "MILESTONES", "plot_timeline"]


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


def plot_timeline(milestones: Iterable[Milestone | tuple[int, str, str]] = MILESTONES, ax=None,
                  highlight: Sequence[str] = ()):
    """A horizontal timeline with one labelled stem per milestone ``(year, name, note)``.

    Labels alternate above and below the axis so neighbouring years stay readable. Names listed in
    ``highlight`` are drawn in red.
    """
    events = sorted((Milestone(*m) for m in milestones), key=lambda m: m.year)
    if not events:
        raise ValueError("milestones is empty: pass at least one (year, name, note) tuple")
    fig, ax = figure_and_axes(ax, figsize=(12, 4.5))
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
