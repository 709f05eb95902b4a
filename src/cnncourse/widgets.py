"""Interactive explorers (ipywidgets + matplotlib) for convolution arithmetic, pooling and padding.

Each explorer is split in two so it can be tested without a browser:

* a plain *summary* function (``conv_summary``, ``pool_summary``, ``padding_summary``) that returns the
  text the explorer shows: the output-size formula with the numbers filled in, or, for a configuration
  that does not work, an explanation of why and what would work instead (never a traceback);
* a plain *drawing* function (``draw_conv``, ``draw_pool``, ``draw_padding``) that returns a matplotlib
  Figure.

``conv_explorer()``, ``pool_explorer()`` and ``padding_explorer()`` wire sliders to those functions and
return a ``ipywidgets.VBox`` subclass whose ``.controls`` (dict of widgets), ``.summary`` (an HTML widget)
and ``.figure`` (the last Figure drawn) a test or a curious student can poke at.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cnncourse.arithmetic import conv_output_size, effective_kernel, pool_output_size
from cnncourse.plotting import new_figure, plot_conv_diagram, plot_grid_values, to_numpy

__all__ = [
    "Summary",
    "conv_summary",
    "pool_summary",
    "padding_summary",
    "draw_conv",
    "draw_pool",
    "POOL_MODES",
    "draw_padding",
    "demo_image",
    "pad_image",
    "pool",
    "PADDING_MODES",
    "conv_explorer",
    "pool_explorer",
    "padding_explorer",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")  # the names nn.Conv2d(padding_mode=...) accepts


@dataclass
class Summary:
    """What an explorer shows under its sliders.

    Attributes:
        valid: whether the configuration works.
        out: the output size (None when invalid).
        text: one or two plain-text lines, starting with ``"Output size"``.
    """

    valid: bool
    out: int | None
    text: str

    def to_html(self) -> str:
        color = "#1b5e20" if self.valid else "#b71c1c"
        lines = "<br>".join(html.escape(line) for line in self.text.splitlines())
        return f'<div style="font-family: monospace; line-height: 1.4; color: {color}">{lines}</div>'

    def __str__(self) -> str:
        return self.text


def _fixes(n: int, k_eff: int, stride: int, padding: int) -> str:
    """Nearby settings that make the windows tile the input (suggestions for an invalid configuration)."""
    ideas = []
    strides = [s for s in range(1, max(stride, 4) + 1) if n + 2 * padding >= k_eff and (n + 2 * padding - k_eff) % s == 0]
    if strides:
        ideas.append("stride " + " or ".join(map(str, strides[:4])))
    pads = [p for p in range(padding + 1, padding + 2 * stride + 1) if n + 2 * p >= k_eff and (n + 2 * p - k_eff) % stride == 0]
    if pads:
        ideas.append(f"padding {pads[0]}")
    return ("Try " + ", or ".join(ideas) + ".") if ideas else "Try a smaller kernel or more padding."


def _pool_fixes(n: int, kernel: int, stride: int) -> str:
    strides = [s for s in range(1, max(stride, 4) + 1) if n >= kernel and (n - kernel) % s == 0]
    return f"Try stride {' or '.join(map(str, strides[:4]))}." if strides else "Try a smaller window."


def conv_summary(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Summary:
    """The output-size formula of a square convolution with the numbers filled in.

    >>> conv_summary(7, 3, stride=2).text.splitlines()[0]
    'Output size = (N - F + 2P) / S + 1 = (7 - 3 + 2*0) / 2 + 1 = 3'
    >>> conv_summary(7, 3, stride=3).valid
    False
    """
    k_eff = effective_kernel(kernel, dilation)
    note = f"\n(dilation {dilation}: the {kernel}x{kernel} kernel covers D(F-1)+1 = {k_eff} pixels, used as F)" \
        if dilation > 1 else ""
    span = n - k_eff + 2 * padding
    head = f"Output size = (N - F + 2P) / S + 1 = ({n} - {k_eff} + 2*{padding}) / {stride} + 1"
    try:
        out = conv_output_size(n, kernel, stride=stride, padding=padding, dilation=dilation)
    except ValueError:
        if span < 0:
            why = f"the kernel ({k_eff} pixels) is larger than the padded input ({n + 2 * padding} pixels)"
        else:
            why = (f"{span} / {stride} is not a whole number, so the windows do not tile the input: the last "
                   f"{span % stride} column(s) and row(s) cannot be reached by a full window")
        return Summary(False, None, f"{head} = {span / stride + 1:.4g}  -> does not fit{note}\n"
                                    f"Invalid: {why}. {_fixes(n, k_eff, stride, padding)}")
    return Summary(True, out, f"{head} = {out}{note}\nOutput: {out}x{out} per filter "
                              f"({out * out} windows of {kernel}x{kernel}).")


def pool_summary(n: int, kernel: int, stride: int | None = None) -> Summary:
    """The output-size formula of square pooling (no padding) with the numbers filled in."""
    s = kernel if stride is None else stride
    head = f"Output size = (N - F) / S + 1 = ({n} - {kernel}) / {s} + 1"
    try:
        out = pool_output_size(n, kernel, stride=s)
    except ValueError:
        span = n - kernel
        why = (f"the window ({kernel}) is larger than the input ({n})" if span < 0 else
               f"{span} / {s} is not a whole number, so the windows do not tile the input")
        return Summary(False, None, f"{head} = {span / s + 1:.4g}  -> does not fit\nInvalid: {why}. "
                                    f"{_pool_fixes(n, kernel, s)}")
    return Summary(True, out, f"{head} = {out}\nOutput: {out}x{out}, no parameters to learn.")


def padding_summary(n: int, pad: int, mode: str) -> Summary:
    """What padding an ``n x n`` image by ``pad`` on each side in ``mode`` gives."""
    if mode not in PADDING_MODES:
        return Summary(False, None, f"Output size: unknown padding mode {mode!r}; choose one of {PADDING_MODES}")
    if mode == "reflect" and pad >= n:
        return Summary(False, None, f"Output size: reflect padding needs pad < image size, got pad={pad} for "
                                    f"{n}x{n}: a mirror image can only repeat pixels that exist. Use pad <= {n - 1}.")
    if mode == "circular" and pad > n:
        return Summary(False, None, f"Output size: circular padding needs pad <= image size, got pad={pad} for "
                                    f"{n}x{n}. Use pad <= {n}.")
    out = n + 2 * pad
    how = {"zeros": "the border is filled with 0",
           "reflect": "the border mirrors the image without repeating the edge pixel",
           "replicate": "the edge pixels are repeated outwards",
           "circular": "the image wraps around (the left border is copied from the right edge)"}[mode]
    return Summary(True, out, f"Output size = N + 2P = {n} + 2*{pad} = {out}\n{mode}: {how}.")


# ----------------------------------------------------------------------------------------- drawings
def draw_conv(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, step: int = 0):
    """Figure of the input grid, padded border, window number ``step`` and output grid; the formula (or
    the explanation of an invalid configuration) is its title."""
    fig = plot_conv_diagram(n, kernel, stride, padding, dilation, step=step)
    summary = conv_summary(n, kernel, stride, padding, dilation)
    fig.suptitle(summary.text.splitlines()[0], fontsize=9, color="black" if summary.valid else "tab:red")
    return fig


def demo_image(size: int = 10) -> np.ndarray:
    """A small deterministic grey image with a gradient, a bright square and a diagonal, so that the
    padding modes (and flips) are easy to tell apart."""
    y, x = np.mgrid[0:size, 0:size]
    img = 0.5 * x / max(size - 1, 1)
    img[1:size // 2, 1:size // 2] = 1.0
    img[np.arange(size), np.arange(size)[::-1]] = 0.8
    return img.astype(np.float32)


def pad_image(image: Any, pad: int, mode: str = "zeros") -> np.ndarray:
    """Pad a 2-D image by ``pad`` on every side using one of :data:`PADDING_MODES` (the same modes and
    results as ``nn.Conv2d(padding_mode=...)``)."""
    import torch
    import torch.nn.functional as F

    summary = padding_summary(int(np.shape(image)[0]), pad, mode)
    if not summary.valid:
        raise ValueError(summary.text.removeprefix("Output size: "))
    t = torch.as_tensor(to_numpy(image), dtype=torch.float32)[None, None]
    out = F.pad(t, (pad,) * 4, mode="constant" if mode == "zeros" else mode)
    return out[0, 0].numpy()


def draw_padding(image: Any, pad: int, mode: str = "zeros"):
    """The image and its padded version side by side, with the original region outlined."""
    import matplotlib.patches as mpatches

    img = to_numpy(image)
    summary = padding_summary(img.shape[0], pad, mode)
    fig, axes = new_figure(1, 2, figsize=(7, 3.6))
    axes = axes[0]
    axes[0].imshow(img, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"original {img.shape[0]}x{img.shape[1]}", fontsize=9)
    if summary.valid:
        padded = pad_image(img, pad, mode)
        axes[1].imshow(padded, cmap="gray", vmin=0, vmax=1)
        axes[1].add_patch(mpatches.Rectangle((pad - 0.5, pad - 0.5), img.shape[1], img.shape[0], fill=False,
                                             edgecolor="tab:orange", lw=2))
        axes[1].set_title(f"{mode} padding {pad}: {padded.shape[0]}x{padded.shape[1]}", fontsize=9)
    else:
        axes[1].text(0.5, 0.5, "\n".join(summary.text.split(": ", 1)[1].split(": ")), ha="center", va="center",
                     wrap=True, fontsize=8, color="tab:red", transform=axes[1].transAxes)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


POOL_MODES = ("max", "avg", "sum")


def pool(x: Any, kernel: int, stride: int | None = None, mode: str = "max") -> np.ndarray:
    """Max, average or sum pooling of a 2-D array (``torch.nn.functional`` does the work; sum pooling is
    ``lp_pool2d`` with p = 1, which adds the window's entries)."""
    import torch
    import torch.nn.functional as F

    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    t = torch.as_tensor(to_numpy(x), dtype=torch.float32)[None, None]
    s = stride if stride is not None else kernel
    if mode == "sum":
        return F.lp_pool2d(t, 1, kernel, s)[0, 0].numpy()
    fn = F.max_pool2d if mode == "max" else F.avg_pool2d
    return fn(t, kernel, s)[0, 0].numpy()


def draw_pool(x: Any, kernel: int = 2, stride: int | None = None, mode: str = "max", step: int = 0):
    """The input values with window ``step`` outlined (orange) and the pooled output with its cell outlined;
    for max pooling the winning entry, where the backward pass sends the gradient, is outlined in red."""
    a = to_numpy(x).astype(float)
    s = kernel if stride is None else stride
    summary = pool_summary(a.shape[0], kernel, s)
    if not summary.valid:
        fig = plot_grid_values([a], [f"input {a.shape[0]}x{a.shape[1]}"])
        fig.suptitle(summary.text.splitlines()[0], fontsize=9, color="tab:red")
        return fig
    out = pool(a, kernel, s, mode)
    n_out = out.shape[0]
    step = int(step) % (n_out * n_out)
    i, j = divmod(step, n_out)
    r, c = i * s, j * s
    win = np.zeros_like(a, dtype=bool)
    win[r:r + kernel, c:c + kernel] = True
    mark = np.zeros_like(a, dtype=bool)
    if mode == "max":  # the entry that wins, and so receives the whole gradient in the backward pass
        patch = a[r:r + kernel, c:c + kernel]
        pi, pj = np.unravel_index(np.argmax(patch), patch.shape)
        mark[r + pi, c + pj] = True
    hit = np.zeros_like(out, dtype=bool)
    hit[i, j] = True
    fig = plot_grid_values([a, out], [f"input {a.shape[0]}x{a.shape[1]}", f"{mode} pool {kernel}x{kernel}/{s}"],
                           highlight=[win, hit], marks=[mark, None], fmt="{:.3g}")
    fig.suptitle(summary.text.splitlines()[0], fontsize=9)
    return fig


# ----------------------------------------------------------------------------------------- explorers
def _widgets():
    import ipywidgets

    return ipywidgets


def _build_explorer(controls: dict[str, Any], summarize: Callable[..., Summary], draw: Callable[..., Any],
                    step_of: Callable[[Summary], int] | None = None):
    """Common wiring: sliders -> summary HTML + figure in an Output widget, returned as a VBox."""
    w = _widgets()
    summary = w.HTML()
    output = w.Output()
    box = w.VBox()
    box.controls, box.summary, box.output, box.figure = controls, summary, output, None

    def values() -> dict[str, Any]:
        return {k: c.value for k, c in controls.items()}

    def render(_change=None) -> None:
        from IPython.display import clear_output, display

        v = values()
        s = summarize(**{k: x for k, x in v.items() if k != "step"})
        summary.value = s.to_html()
        if "step" in controls and step_of is not None:
            controls["step"].max = max(step_of(s) - 1, 0)
            v["step"] = controls["step"].value
        try:
            fig = draw(**v)
        except ValueError as err:  # never a traceback in the explorer
            summary.value += f'<div style="color:#b71c1c">{html.escape(str(err))}</div>'
            return
        box.figure = fig
        with output:
            clear_output(wait=True)
            display(fig)

    for c in controls.values():
        c.observe(render, names="value")
    rows = [w.HBox(list(controls.values())[i:i + 3]) for i in range(0, len(controls), 3)]
    box.children = [*rows, summary, output]
    box.render = render
    render()
    return box


def _slider(description: str, value: int, lo: int, hi: int):
    w = _widgets()
    return w.IntSlider(value=value, min=lo, max=hi, description=description, continuous_update=False,
                       style={"description_width": "initial"})


def conv_explorer(n: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0, dilation: int = 1):
    """Sliders for input size, kernel, stride, padding and dilation plus a window slider (with a play
    button that animates the sliding window); shows the output-size formula and the diagram.

    An invalid combination (e.g. 7x7 input, 3x3 kernel, stride 3) shows the explanation and the
    unreachable border in red instead of an error.
    """
    w = _widgets()
    controls = {
        "n": _slider("input N", n, 1, 16),
        "kernel": _slider("kernel F", kernel, 1, 7),
        "stride": _slider("stride S", stride, 1, 5),
        "padding": _slider("padding P", padding, 0, 4),
        "dilation": _slider("dilation D", dilation, 1, 4),
        "step": _slider("window", 0, 0, 0),
    }
    play = w.Play(interval=600, min=0, max=0, description="animate")
    w.jslink((play, "value"), (controls["step"], "value"))
    w.jslink((controls["step"], "max"), (play, "max"))
    box = _build_explorer(controls, conv_summary, draw_conv, step_of=lambda s: (s.out or 1) ** 2)
    box.children = (w.HBox([play]), *box.children)
    return box


def pool_explorer(size: int = 6, kernel: int = 2, stride: int = 2, mode: str = "max", seed: int = 0):
    """Max/average/sum pooling of a random ``size x size`` integer matrix: sliders for kernel, stride and the
    window; the outlined input cell of max pooling is where the backward pass sends the gradient."""
    w = _widgets()
    rng = np.random.default_rng(seed)
    data = {"x": rng.integers(0, 10, size=(size, size)).astype(float)}
    controls = {
        "kernel": _slider("kernel", kernel, 1, size),
        "stride": _slider("stride", stride, 1, size),
        "mode": w.ToggleButtons(options=list(POOL_MODES), value=mode, description="mode"),
        "step": _slider("window", 0, 0, 0),
    }
    box = _build_explorer(
        controls,
        lambda kernel, stride, mode: pool_summary(size, kernel, stride),
        lambda kernel, stride, mode, step: draw_pool(data["x"], kernel, stride, mode, step),
        step_of=lambda s: (s.out or 1) ** 2,
    )
    box.data = data["x"]
    return box


def padding_explorer(image: Any = None, pad: int = 2, mode: str = "zeros"):
    """Pad an image (default :func:`demo_image`) with a slider for the width and a choice of mode
    (zeros, reflect, replicate, circular)."""
    w = _widgets()
    img = demo_image() if image is None else to_numpy(image)
    if img.ndim != 2:
        raise ValueError(f"padding_explorer needs a 2-D (grey) image, got shape {img.shape}")
    controls = {
        "pad": _slider("padding", pad, 0, max(img.shape[0], 1) + 2),
        "mode": w.Dropdown(options=list(PADDING_MODES), value=mode, description="mode"),
    }
    return _build_explorer(
        controls,
        lambda pad, mode: padding_summary(img.shape[0], pad, mode),
        lambda pad, mode: draw_padding(img, pad, mode),
    )
