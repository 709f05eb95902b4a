"""Figures for the lectures: timelines, image grids, feature maps, filters, confusion matrices,
convolution diagrams and per-layer bar charts.

Every function returns the matplotlib ``Figure`` it drew (so a notebook shows it and a test can inspect
its axes) and accepts NumPy arrays or torch tensors. Figures are closed in pyplot as soon as they are made
(see :func:`new_figure`): a notebook shows the one a cell returns exactly once, and none of them calls
``plt.show()``.

One module per kind of figure, all re-exported here (``from cnncourse.plotting import plot_images``):

- ``figure``: :func:`new_figure`, :func:`to_numpy`
- ``history``: :data:`MILESTONES`, :func:`plot_timeline`
- ``images``: :func:`plot_images`, :func:`plot_feature_maps`, :func:`plot_filters`,
  :func:`plot_confusion_matrix`, :func:`plot_applications`
- ``diagrams``: :func:`plot_conv_diagram`, :func:`plot_grid_values`, :func:`plot_receptive_field`
- ``tables``: :func:`plot_bar_table`
- ``curves``: :func:`plot_learning_curves`, :func:`plot_curves`, :func:`plot_history_comparison`
"""
from cnncourse.plotting.curves import plot_curves, plot_history_comparison, plot_learning_curves
from cnncourse.plotting.diagrams import plot_conv_diagram, plot_grid_values, plot_receptive_field
from cnncourse.plotting.figure import new_figure, to_numpy
from cnncourse.plotting.history import MILESTONES, Milestone, plot_timeline
from cnncourse.plotting.images import (plot_applications, plot_confusion_matrix, plot_feature_maps, plot_filters,
                                       plot_images)
from cnncourse.plotting.tables import plot_bar_table

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
