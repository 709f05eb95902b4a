"""Alt text for every matplotlib figure a lecture shows, computed in the kernel while the site is built.

``docs/build.py`` runs this file's code as a hidden first cell of each lecture. It wraps the PNG formatter
of matplotlib figures so each image output carries ``{"alt": ...}`` in its metadata: the figure's label
(``fig.set_label("...")`` is how a lecture gives its own caption), else a description from its titles,
axis labels and what each panel holds (lines, bars, images). The site's Sphinx extension copies it into the
page's ``<img alt>``.
"""
from __future__ import annotations


def describe_axes(ax) -> str:
    """One panel in words: its title, axis labels and what it draws."""
    parts = []
    title = ax.get_title() or ax.get_title(loc="left") or ax.get_title(loc="right")
    if title:
        parts.append(f"“{title}”")
    drawn = []
    if ax.images:
        drawn.append("an image" if len(ax.images) == 1 else f"{len(ax.images)} images")
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")] or ax.get_lines()
    if lines:
        labels = [line.get_label() for line in lines if not line.get_label().startswith("_")]
        drawn.append(f"{len(lines)} line{'s' if len(lines) > 1 else ''}"
                     + (f" ({', '.join(labels[:6])})" if labels else ""))
    if ax.patches:
        drawn.append(f"{len(ax.patches)} bars or shapes")
    if ax.collections:
        drawn.append("points or filled areas")
    if drawn:
        parts.append(", ".join(drawn))
    xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
    if xlabel or ylabel:
        parts.append(f"x: {xlabel or 'unlabelled'}, y: {ylabel or 'unlabelled'}")
    return "; ".join(parts)


def describe_figure(fig) -> str:
    """Alt text for ``fig``: its label when the lecture set one, else its titles, axes and contents."""
    label = fig.get_label()
    if label and not label.startswith("_") and not label.isdigit():
        return label
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    panels = [describe_axes(ax) for ax in fig.get_axes() if ax.get_visible() and ax.axison or ax.images]
    panels = [p for p in panels if p]
    head = f"Figure “{suptitle}”" if suptitle else "Figure"
    if not panels:
        return head + (" (a drawing)" if not suptitle else "")
    if len(panels) == 1:
        return f"{head}: {panels[0]}"
    return f"{head} with {len(panels)} panels: " + " | ".join(panels[:8]) + (" | …" if len(panels) > 8 else "")


def install() -> None:
    """Make every figure's PNG output carry its alt text (re-applied before each cell, since ``%matplotlib``
    re-registers the formatters)."""
    from IPython import get_ipython
    from matplotlib.figure import Figure

    ip = get_ipython()
    if ip is None:
        return

    def wrap(*_args) -> None:
        formatter = ip.display_formatter.formatters["image/png"]
        current = formatter.lookup_by_type(Figure) if Figure in formatter.type_printers else None
        if current is None or getattr(current, "_adds_alt", False):
            return

        def png_with_alt(fig, _inner=current):
            data = _inner(fig)
            if isinstance(data, tuple):  # already (data, metadata)
                data, meta = data
                return data, {**(meta or {}), "alt": describe_figure(fig)}
            return (data, {"alt": describe_figure(fig)}) if data is not None else None

        png_with_alt._adds_alt = True
        formatter.for_type(Figure, png_with_alt)

    import matplotlib.pyplot as plt

    plt.close(plt.figure())  # loads the inline backend now: it registers its formatters when it loads

    wrap()
    ip.events.register("pre_run_cell", wrap)
    ip.events.register("post_execute", wrap)  # before the inline backend shows the cell's open figures
