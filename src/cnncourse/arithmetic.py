"""Convolution arithmetic: output sizes, parameter counts, multiply-accumulates and receptive fields.

Conventions used throughout the course:

* A *multiply-accumulate* (MAC) is one ``a * b + c``. ``FLOPs = 2 x MACs`` (one multiply plus one add),
  which is what ``torch.utils.flop_counter.FlopCounterMode`` reports. Papers mix the two: the ResNet paper's
  "FLOPs" are multiply-adds (MACs); the VGG paper reports parameters only (the 15.3-15.5 G figures quoted
  for VGG16 come from later work). Each lecture says which one it quotes.
* MACs cover convolutions and linear layers only, matching ``FlopCounterMode``. Bias additions, activations
  and normalisation are not counted (a few percent at most). Pooling is counted separately, as *pooling
  operations* (``pool_ops``: output size x F*F comparisons or additions), never mixed into the MACs.
* ``kernel``, ``stride``, ``padding`` and ``dilation`` may be an int or an ``(h, w)`` pair; when any size
  argument is a pair the result is an ``(h, w)`` pair.

Every function checks its input and raises ``ValueError`` naming the offending argument, including the
common case of a configuration that does not tile the input, e.g. ``(32 - 5) / 2 + 1 = 14.5``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

Size = int | tuple[int, int]

__all__ = [
    "effective_kernel",
    "conv_output_size",
    "pool_output_size",
    "transposed_conv_output_size",
    "conv_params",
    "linear_params",
    "conv_macs",
    "conv_flops",
    "linear_macs",
    "receptive_field",
    "LayerRow",
    "LayerTable",
    "layer_table",
    "flop_counter_macs",
    "pool_ops",
]


# ----------------------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            raise ValueError(f"{name} must be an integer, got the float {value!r}: pass int({value!r})")
        raise ValueError(f"{name} must be an integer (or an (h, w) pair of integers), got {value!r}")
    if value < minimum:
        what = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def _pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r} with {len(value)} entries")
        return _check_int(f"{name}[0]", value[0], minimum), _check_int(f"{name}[1]", value[1], minimum)
    v = _check_int(name, value, minimum)
    return v, v


def _is_pair(*values: Any) -> bool:
    return any(isinstance(v, (tuple, list)) for v in values)


def _result(pair: bool, h: int, w: int) -> Size:
    return (h, w) if pair else h


# ----------------------------------------------------------------------------------------- output sizes
def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Pixels a dilated kernel spans along one axis: ``dilation * (kernel - 1) + 1`` (taps ``dilation`` apart).

    >>> effective_kernel(3, dilation=2)
    5
    """
    return dilation * (kernel - 1) + 1


def _sliding_size(n: int, k_eff: int, stride: int, pad_total: int, strict: bool, ceil_mode: bool,
                  axis: str, what: str) -> int:
    span = n + pad_total - k_eff
    if span < 0:
        raise ValueError(
            f"kernel does not fit{axis}: the (dilated) kernel covers {k_eff} pixels but the padded input has "
            f"only {n + pad_total}; use a smaller kernel or dilation, or more padding"
        )
    if span % stride:
        if strict:
            raise ValueError(
                f"{what} does not tile the input{axis}: (N - F + 2P) / S + 1 = ({n} - {k_eff} + {pad_total}) / "
                f"{stride} + 1 = {span / stride + 1:g} is not an integer. Change stride or padding so that "
                f"S divides N - F + 2P, or pass strict=False to drop the last partial window like PyTorch does"
            )
        if ceil_mode:  # PyTorch keeps a last partial window only if it starts inside the input or left padding
            out = -(-span // stride) + 1
            return out - 1 if (out - 1) * stride >= n + pad_total // 2 else out
    return span // stride + 1


def conv_output_size(n: Size, kernel: Size, stride: Size = 1, padding: Size | str = 0,
                     dilation: Size = 1, strict: bool = True) -> Size:
    """Spatial output size of a convolution: ``(N - D(F-1) - 1 + 2P) / S + 1``.

    Args:
        n: input height/width (int) or an ``(h, w)`` pair.
        kernel: filter size F (int or pair).
        stride: step S between windows.
        padding: zeros added on each side P (int or pair), ``"valid"`` (P = 0) or ``"same"`` (output = input;
            needs stride 1, as in ``torch.nn.Conv2d``).
        dilation: spacing D between kernel taps; a dilated kernel covers ``D(F-1)+1`` pixels.
        strict: when True (the default) a configuration whose windows do not tile the input raises
            ValueError; when False the last partial window is dropped (``floor``), as PyTorch does.

    Returns:
        The output size, an int, or an ``(h, w)`` pair when any argument is a pair.

    >>> conv_output_size(7, 3, stride=2)
    3
    >>> conv_output_size(227, 11, stride=4)
    55
    """
    pair = _is_pair(n, kernel, stride, padding, dilation)
    ns, ks = _pair("n", n, 1), _pair("kernel", kernel, 1)
    ss, ds = _pair("stride", stride, 1), _pair("dilation", dilation, 1)
    out = []
    for axis, (ni, ki, si, di) in enumerate(zip(ns, ks, ss, ds)):
        k_eff = effective_kernel(ki, di)
        label = f" along {'hw'[axis]}" if pair else ""
        if isinstance(padding, str):
            if padding == "valid":
                pad_total = 0
            elif padding == "same":
                if si != 1:
                    raise ValueError(f"padding='same' needs stride=1 (as in torch.nn.Conv2d), got stride={stride}; "
                                     "pass an explicit integer padding instead")
                pad_total = k_eff - 1
            else:
                raise ValueError(f"padding must be an int, an (h, w) pair, 'valid' or 'same', got {padding!r}")
        else:
            pad_total = 2 * _pair("padding", padding, 0)[axis]
        out.append(_sliding_size(ni, k_eff, si, pad_total, strict, False, label, "convolution"))
    return _result(pair, *out)


def pool_output_size(n: Size, kernel: Size, stride: Size | None = None, padding: Size = 0,
                     dilation: Size = 1, ceil_mode: bool = False, strict: bool = True) -> Size:
    """Spatial output size of max/average pooling (same formula as a convolution, no parameters).

    ``stride`` defaults to ``kernel`` (non-overlapping windows), as in ``torch.nn.MaxPool2d``.
    Padding may be at most half the kernel (PyTorch's rule). With ``strict=False`` a partial last window
    is dropped, or kept when ``ceil_mode=True`` (PyTorch's ``ceil_mode``).

    >>> pool_output_size(224, 2)
    112
    """
    pair = _is_pair(n, kernel, stride, padding, dilation)
    ks = _pair("kernel", kernel, 1)
    ss = ks if stride is None else _pair("stride", stride, 1)
    ps = _pair("padding", padding, 0)
    for axis in range(2):
        if ps[axis] > ks[axis] // 2:
            raise ValueError(f"padding must be at most half the kernel size for pooling, got padding={padding} "
                             f"with kernel={kernel}")
    ns, ds = _pair("n", n, 1), _pair("dilation", dilation, 1)
    out = []
    for axis in range(2):
        k_eff = effective_kernel(ks[axis], ds[axis])
        label = f" along {'hw'[axis]}" if pair else ""
        out.append(_sliding_size(ns[axis], k_eff, ss[axis], 2 * ps[axis], strict, ceil_mode, label, "pooling"))
    return _result(pair, *out)


def transposed_conv_output_size(n: Size, kernel: Size, stride: Size = 1, padding: Size = 0,
                                output_padding: Size = 0, dilation: Size = 1) -> Size:
    """Output size of a transposed convolution: ``(N-1)S - 2P + D(F-1) + output_padding + 1``.

    This inverts :func:`conv_output_size`: a stride-S convolution maps several input sizes to the same
    output size, and ``output_padding`` (< stride or dilation, as in ``torch.nn.ConvTranspose2d``) picks one.

    >>> transposed_conv_output_size(3, 3, stride=2)
    7
    """
    pair = _is_pair(n, kernel, stride, padding, output_padding, dilation)
    ns, ks = _pair("n", n, 1), _pair("kernel", kernel, 1)
    ss, ps = _pair("stride", stride, 1), _pair("padding", padding, 0)
    ops, ds = _pair("output_padding", output_padding, 0), _pair("dilation", dilation, 1)
    out = []
    for axis in range(2):
        if ops[axis] >= max(ss[axis], ds[axis]):
            raise ValueError(f"output_padding must be smaller than stride or dilation, got "
                             f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
        size = (ns[axis] - 1) * ss[axis] - 2 * ps[axis] + ds[axis] * (ks[axis] - 1) + ops[axis] + 1
        if size <= 0:
            raise ValueError(f"padding={padding} is too large: the transposed convolution's output size would be "
                             f"{size}; reduce padding")
        out.append(size)
    return _result(pair, *out)


# ----------------------------------------------------------------------------------------- counts
def conv_params(in_channels: int, out_channels: int, kernel: Size, bias: bool = True, groups: int = 1) -> int:
    """Learnable parameters of a 2-D convolution: ``F * (C/groups) * kh * kw + F`` (bias).

    >>> conv_params(3, 96, 11)   # AlexNet conv1
    34944
    """
    c = _check_int("in_channels", in_channels, 1)
    f = _check_int("out_channels", out_channels, 1)
    g = _check_int("groups", groups, 1)
    kh, kw = _pair("kernel", kernel, 1)
    if c % g or f % g:
        raise ValueError(f"groups={g} must divide both in_channels={c} and out_channels={f}")
    return f * (c // g) * kh * kw + (f if bias else 0)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Learnable parameters of a fully connected layer: ``in * out + out`` (bias).

    >>> linear_params(6 * 6 * 256, 4096)
    37752832
    """
    i = _check_int("in_features", in_features, 1)
    o = _check_int("out_features", out_features, 1)
    return i * o + (o if bias else 0)


def conv_macs(in_channels: int, out_channels: int, kernel: Size, out_size: Size, groups: int = 1) -> int:
    """Multiply-accumulates of one convolution on one image: every output value is a dot product of
    length ``(C/groups) * kh * kw``, and there are ``F * out_h * out_w`` output values.

    >>> conv_macs(3, 96, 11, 55)   # AlexNet conv1: about 105 M MACs
    105415200
    """
    conv_params(in_channels, out_channels, kernel, bias=False, groups=groups)  # validates the arguments
    kh, kw = _pair("kernel", kernel, 1)
    oh, ow = _pair("out_size", out_size, 1)
    return out_channels * oh * ow * (in_channels // groups) * kh * kw


def conv_flops(in_channels: int, out_channels: int, kernel: Size, out_size: Size, groups: int = 1) -> int:
    """FLOPs of one convolution on one image, ``2 x`` :func:`conv_macs` (FlopCounterMode's convention)."""
    return 2 * conv_macs(in_channels, out_channels, kernel, out_size, groups)


def linear_macs(in_features: int, out_features: int) -> int:
    """Multiply-accumulates of a fully connected layer on one input vector: ``in * out``."""
    return linear_params(in_features, out_features, bias=False)


def pool_ops(channels: int, kernel: Size, out_size: Size) -> int:
    """Operations of one max/average/sum pooling layer on one image: every output value looks at ``F*F``
    inputs (one comparison or addition each, counted as one operation), so ``channels * out_h * out_w * F*F``.

    These are not MACs (nothing is multiplied by a weight) and ``FlopCounterMode`` does not count them;
    :func:`layer_table` reports them in their own ``pool_ops`` column.

    >>> pool_ops(96, 3, 27)   # AlexNet pool1: 3x3 windows, 27x27x96 output
    629856
    """
    c = _check_int("channels", channels, 1)
    kh, kw = _pair("kernel", kernel, 1)
    oh, ow = _pair("out_size", out_size, 1)
    return c * oh * ow * kh * kw


def _adaptive_window_sum(n_in: int, n_out: int) -> int:
    """Sum of the window lengths of adaptive pooling along one axis (PyTorch's start/end index rule)."""
    return sum(-(-((i + 1) * n_in) // n_out) - (i * n_in) // n_out for i in range(n_out))


# ----------------------------------------------------------------------------------------- receptive field
def _layer_spec(i: int, layer: Any) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of one entry of a ``receptive_field`` stack (square kernels)."""
    if hasattr(layer, "kernel_size"):  # a torch module such as nn.Conv2d or nn.MaxPool2d
        k, s = layer.kernel_size, layer.stride
        d = getattr(layer, "dilation", 1)
    elif isinstance(layer, dict):
        unknown = set(layer) - {"kernel", "stride", "dilation"}
        if "kernel" not in layer or unknown:
            raise ValueError(f"layers[{i}] must have the keys kernel, stride (optional), dilation (optional), "
                             f"got {sorted(layer)}")
        k, s, d = layer["kernel"], layer.get("stride", 1), layer.get("dilation", 1)
    elif isinstance(layer, (tuple, list)) and len(layer) in (2, 3):
        k, s, d = (*layer, 1) if len(layer) == 2 else layer
    else:
        raise ValueError(f"layers[{i}] must be (kernel, stride), (kernel, stride, dilation), a dict or a conv/pool "
                         f"module, got {layer!r}")
    ks, ss, dd = (_pair(f"layers[{i}].{n}", v, 1) for n, v in (("kernel", k), ("stride", s), ("dilation", d)))
    if ks[0] != ks[1] or ss[0] != ss[1] or dd[0] != dd[1]:
        raise ValueError(f"layers[{i}] is not square ({layer!r}); compute each axis separately")
    return ks[0], ss[0], dd[0]


def receptive_field(layers: Iterable[Any]) -> int:
    """Receptive field (in input pixels) of one output unit of a stack of conv/pool layers.

    Each layer adds ``D(F-1)`` times the product of the strides before it:
    ``r = 1 + sum_l D_l (F_l - 1) prod_{i<l} S_i``.

    Args:
        layers: ``(kernel, stride)`` or ``(kernel, stride, dilation)`` tuples, dicts with those keys, or
            torch conv/pool modules, first layer first.

    >>> receptive_field([(3, 1), (3, 1)])          # two 3x3 convs see 5x5
    5
    >>> receptive_field([(3, 1)] * 3)              # three see 7x7
    7
    """
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty: pass at least one (kernel, stride) pair")
    rf, jump = 1, 1
    for i, layer in enumerate(layers):
        k, s, d = _layer_spec(i, layer)
        rf += d * (k - 1) * jump
        jump *= s
    return rf


# ----------------------------------------------------------------------------------------- layer tables
@dataclass
class LayerRow:
    """One leaf module call in a :class:`LayerTable`."""

    name: str
    type: str
    out_shape: tuple[int, ...]
    params: int
    macs: int
    pool_ops: int = 0  # pooling layers: output size x F*F (not MACs; FlopCounterMode counts none)

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class LayerTable:
    """Per-layer output shape, parameters and MACs of a model, as returned by :func:`layer_table`."""

    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    input_shape: tuple[int, ...] = ()

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    @property
    def total_pool_ops(self) -> int:
        """Pooling operations (output size x F*F per pooling layer), kept apart from the MACs."""
        return sum(r.pool_ops for r in self.rows)

    def totals_by_type(self) -> dict[str, dict[str, int]]:
        """Parameters, MACs and pooling operations summed per layer type, e.g. ``{"Conv2d": {...}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            t = out.setdefault(r.type, {"params": 0, "macs": 0, "pool_ops": 0})
            t["params"] += r.params
            t["macs"] += r.macs
            t["pool_ops"] += r.pool_ops
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i: int) -> LayerRow:
        return self.rows[i]

    def _cells(self) -> list[list[str]]:
        cells = [[r.name, r.type, "x".join(map(str, r.out_shape)), f"{r.params:,}", f"{r.macs:,}", f"{r.pool_ops:,}"]
                 for r in self.rows]
        cells.append(["total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}", f"{self.total_pool_ops:,}"])
        return cells

    _HEADER = ["layer", "type", "output shape", "params", "MACs", "pool ops"]

    def to_markdown(self) -> str:
        """The table as GitHub markdown."""
        lines = ["| " + " | ".join(self._HEADER) + " |", "|" + "---|" * len(self._HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in self._cells()]
        return "\n".join(lines)

    def __str__(self) -> str:
        cells = [self._HEADER, *self._cells()]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self._HEADER))]
        return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in cells)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self._HEADER)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in self._cells())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _full_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive ints such as (3, 224, 224) or (1, 3, 224, 224), got {input_shape!r}")
    return (1, *shape) if len(shape) in (1, 3) else shape


def layer_table(model: Any, input_shape: Sequence[int]) -> LayerTable:
    """Run ``model`` on zeros of ``input_shape`` and report every leaf module's output shape,
    own parameters and multiply-accumulates.

    Args:
        model: a ``torch.nn.Module``.
        input_shape: ``(C, H, W)`` (batch of one, the usual per-image numbers) or ``(N, C, H, W)``
            (MACs then cover the whole batch).

    MACs are counted for ``Conv*d``, ``ConvTranspose*d`` and ``Linear``. Pooling layers (max, average,
    their adaptive forms and LP pooling) get ``pool_ops`` instead: output size x F*F, one comparison or
    addition per input of every window (adaptive pooling: the exact window sizes). ``FlopCounterMode``
    counts no pooling, so the cross-check compares the conv/linear MACs only: ``total_macs`` equals
    :func:`flop_counter_macs` (FlopCounterMode / 2) for models built from those layers, whatever pooling
    they contain. ``total_params`` equals ``sum(p.numel() for p in model.parameters())``.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _full_input_shape(input_shape)
    table = LayerTable(total_params=sum(p.numel() for p in model.parameters()), input_shape=shape)
    names = {m: n for n, m in model.named_modules()}
    counted: set[int] = set()

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        out_shape = tuple(out.shape) if hasattr(out, "shape") else ()
        params = 0
        if id(module) not in counted:  # a module called twice owns its parameters once
            counted.add(id(module))
            params = sum(p.numel() for p in module.parameters(recurse=False))
        macs = 0
        if isinstance(module, nn.modules.conv._ConvNd):
            per_out = module.weight[0].numel()  # (C/groups) * kernel taps
            if module.transposed:  # each input value is scattered through (F/groups) * taps weights
                macs = inputs[0].numel() * module.weight[0].numel()
            else:
                macs = out.numel() * per_out
        elif isinstance(module, nn.Linear):
            macs = out.numel() * module.in_features
        table.rows.append(LayerRow(names.get(module, type(module).__name__), type(module).__name__,
                                   out_shape[1:] if len(shape) != len(input_shape) else out_shape, params, macs,
                                   _pool_ops_of(module, inputs[0], out)))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    own = sum(r.params for r in table.rows)
    if own != table.total_params:
        table.rows.append(LayerRow("(parameters outside leaf layers)", "", (), table.total_params - own, 0))
    return table


def _pool_ops_of(module: Any, x: Any, out: Any) -> int:
    """Pooling operations of one pooling module call (0 for any other module)."""
    from torch import nn

    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                           nn.modules.pooling._LPPoolNd)):
        k = module.kernel_size
        taps = math.prod(k) if isinstance(k, (tuple, list)) else k ** (out.dim() - 2)
        return out.numel() * taps
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        spatial = out.dim() - 2  # windows per axis are independent: total = prod of per-axis window sums
        sums = [_adaptive_window_sum(x.shape[-spatial + i], out.shape[-spatial + i]) for i in range(spatial)]
        return math.prod(out.shape[:-spatial]) * math.prod(sums)
    return 0


def flop_counter_macs(model: Any, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass measured by ``torch.utils.flop_counter.FlopCounterMode`` (its FLOPs / 2),
    the independent cross-check for :func:`layer_table`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    shape = _full_input_shape(input_shape)
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(shape, device=device))
    finally:
        model.train(was_training)
    return math.floor(counter.get_total_flops() / 2)
