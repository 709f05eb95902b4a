"""What a trained CNN has learned: activations, top-activating patches, activation maximisation, saliency,
occlusion and feature embeddings (lecture 11).

Every function takes a plain ``torch.nn`` model and images ``x`` of shape ``(N, C, H, W)`` in the model's input
normalisation. Models are put in evaluation mode (BatchNorm uses its running statistics, dropout is off) and
left there. Pictures are drawn with :mod:`cnncourse.plotting` (``plot_filters``, ``plot_feature_maps``,
``plot_images``).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["activations", "features_before_head", "receptive_box", "top_activations", "TopPatches", "top_patches",
           "activation_maximization", "saliency_map", "occlusion_map", "pca_2d", "plot_activation_grid"]

_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of images (N, C, H, W), got {shape}; add a batch axis with x[None]")


@torch.no_grad()
def activations(model: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of every top-level layer of ``model`` for ``x``, in order: ``{name: tensor}``.

    ``name`` is the layer's index in the ``nn.Sequential`` followed by its class, e.g. ``"0 Conv2d"``.
    """
    _check_images(x)
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"activations() walks an nn.Sequential layer by layer, got {type(model).__name__}")
    model.eval()
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(model):
        x = layer(x)
        out[f"{i} {type(layer).__name__}"] = x.clone()     # an in-place ReLU next would overwrite x
    return out


@torch.no_grad()
def features_before_head(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The input of the model's last ``nn.Linear`` (the penultimate features) for every image: ``(N, D)``."""
    _check_images(x)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear head, so it has no penultimate features")
    captured: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    try:
        model.eval()
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size])
    finally:
        handle.remove()
    return torch.cat(captured).flatten(1)


def receptive_box(layers: Sequence[nn.Module], y: int, x: int) -> tuple[int, int, int, int]:
    """The input window ``(top, left, bottom, right)`` (bottom/right exclusive, may reach outside the image)
    that unit ``(y, x)`` of the output of ``layers`` sees.

    Conv2d/MaxPool2d/AvgPool2d layers move and grow the window; every other layer (BatchNorm, ReLU, ...) keeps it.
    Per layer, with jump ``j`` (input pixels between neighbouring units) and ``start`` (the input position of the
    first unit's window): ``size += d (k - 1) j``, ``start -= p j``, ``j *= s``.
    """
    size_h = size_w = 1
    jump_h = jump_w = 1
    start_h = start_w = 0
    for layer in layers:
        if not isinstance(layer, _SPATIAL):
            continue
        (kh, kw), (sh, sw), (ph, pw) = (_pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size),
                                        _pair(layer.padding))
        dh, dw = _pair(getattr(layer, "dilation", 1))
        size_h, size_w = size_h + dh * (kh - 1) * jump_h, size_w + dw * (kw - 1) * jump_w
        start_h, start_w = start_h - ph * jump_h, start_w - pw * jump_w
        jump_h, jump_w = jump_h * sh, jump_w * sw
    top, left = start_h + y * jump_h, start_w + x * jump_w
    return top, left, top + size_h, left + size_w


@torch.no_grad()
def top_activations(layers: nn.Sequential, x: torch.Tensor, k: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """For every channel of the output of ``layers`` (a prefix of a model, e.g. ``model[:8]``): the ``k`` largest
    activations over the images in ``x``, at most one per image (its strongest unit), so that nine views of
    the same image do not fill a channel's list.

    Returns ``(values (C, k), positions (C, k, 3))``, largest first; a position is ``(image index, y, x)`` in the
    channel's activation map.
    """
    _check_images(x)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be between 1 and the number of images ({len(x)}), got {k}")
    layers.eval()
    maps = layers(x)
    if maps.ndim != 4:
        raise ValueError(f"layers must output activation maps (N, C, H, W), got shape {tuple(maps.shape)}")
    best, where = maps.flatten(2).max(dim=2)                    # (N, C): the strongest unit of each image
    values, images = best.T.topk(k, dim=1)                      # (C, k)
    units = where.T.gather(1, images)
    w = maps.shape[-1]
    return values, torch.stack([images, units // w, units % w], dim=2)


class TopPatches(NamedTuple):
    """The ``k`` strongest activations of one channel over a set of images."""
    patches: torch.Tensor       # (k, C, size, size): the input windows, zero outside the image
    values: torch.Tensor        # (k,) the activations, largest first
    positions: torch.Tensor     # (k, 3) image index, y, x of each unit in the channel's activation map


@torch.no_grad()
def top_patches(layers: nn.Sequential, x: torch.Tensor, channel: int, k: int = 9) -> TopPatches:
    """The ``k`` input patches (receptive fields, see :func:`receptive_box`) that most activate ``channel`` of
    the output of ``layers``, searched over every position of every image in ``x`` (one patch per image)."""
    values, positions = top_activations(layers, x, k)
    if not 0 <= channel < len(values):
        raise ValueError(f"channel must be in [0, {len(values)}), the channels of the layer's output; got {channel}")
    values, positions = values[channel], positions[channel]
    top, left, bottom, right = receptive_box(layers, 0, 0)
    size_h, size_w = bottom - top, right - left
    margin = max(size_h, size_w)
    padded = F.pad(x, (margin, margin, margin, margin))
    patches = []
    for n, yy, xx in positions.tolist():
        t, l, _, _ = receptive_box(layers, yy, xx)
        patches.append(padded[n, :, t + margin:t + margin + size_h, l + margin:l + margin + size_w])
    return TopPatches(torch.stack(patches), values, positions)


def activation_maximization(model: nn.Module, target: int, shape: Sequence[int], steps: int = 200,
                            lr: float = 0.1, l2: float = 1e-2, seed: int = 0,
                            layers: nn.Module | None = None) -> tuple[torch.Tensor, list[float]]:
    """An input that maximises one unit, found by gradient ascent on the image (Erhan et al., 2009;
    Simonyan et al., 2014).

    Objective: ``score(x) - l2 * ||x||^2``, where ``score`` is the class score ``model(x)[0, target]`` or, when
    ``layers`` (a prefix of the model) is given, the mean activation of channel ``target`` of ``layers(x)``.
    The L2 penalty keeps the image small and smooth-ish; without it the score grows by scaling pixels up.
    Starts from small Gaussian noise (``seed``); Adam with step ``lr``. Returns ``(image (1, *shape),
    objective per step)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    net = model if layers is None else layers
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    image = (0.01 * torch.randn(1, *shape, generator=gen)).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=lr)
    history = []
    for _ in range(steps):
        out = net(image)
        score = out[0, target] if layers is None else out[0, target].mean()
        objective = score - l2 * image.pow(2).sum()
        image.grad, = torch.autograd.grad(-objective, image)   # the weights get no gradient
        optimizer.step()
        history.append(objective.detach().item())
    return image.detach(), history


def saliency_map(model: nn.Module, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al., 2014): ``max_c |d score_target / d x_c|`` per pixel, ``(H, W)``,
    for one image ``x`` of shape ``(1, C, H, W)``. ``target`` defaults to the predicted class."""
    _check_images(x)
    if len(x) != 1:
        raise ValueError(f"saliency_map takes one image, shape (1, C, H, W), got {tuple(x.shape)}; use x[i:i+1]")
    model.eval()
    x = x.clone().requires_grad_(True)
    scores = model(x)
    target = int(scores.argmax()) if target is None else target
    grad, = torch.autograd.grad(scores[0, target], x)
    return grad[0].abs().amax(dim=0)


@torch.no_grad()
def occlusion_map(model: nn.Module, x: torch.Tensor, target: int, patch: int = 8, stride: int = 2,
                  fill: float = 0.0) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus, 2014): the probability of class ``target`` when a ``patch`` x
    ``patch`` square of the image is replaced by ``fill``, for every square position (step ``stride``).

    ``x``: one image ``(1, C, H, W)``. Returns ``((H - patch) // stride + 1, (W - patch) // stride + 1)``:
    low values mark the regions the prediction depends on.
    """
    _check_images(x)
    if len(x) != 1:
        raise ValueError(f"occlusion_map takes one image, shape (1, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if not 1 <= patch <= min(h, w) or stride < 1:
        raise ValueError(f"need 1 <= patch <= {min(h, w)} and stride >= 1, got patch={patch}, stride={stride}")
    model.eval()
    ys, xs = range(0, h - patch + 1, stride), range(0, w - patch + 1, stride)
    batch = x.repeat(len(ys) * len(xs), 1, 1, 1)
    for i, (top, left) in enumerate((t, l) for t in ys for l in xs):
        batch[i, :, top:top + patch, left:left + patch] = fill
    probs = model(batch).softmax(dim=1)[:, target]
    return probs.reshape(len(ys), len(xs))


def pca_2d(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ``(N, D)`` features on their two principal components: ``(coords (N, 2), explained (2,))``,
    ``explained`` being the fraction of the total variance each component carries."""
    if features.ndim != 2 or len(features) < 3:
        raise ValueError(f"features must be (N, D) with N >= 3, got {tuple(features.shape)}")
    centred = features.double() - features.double().mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    variance = s.pow(2)
    return (centred @ vh[:2].T).float(), (variance[:2] / variance.sum()).float()


def plot_activation_grid(acts: dict[str, torch.Tensor], max_channels: int = 8, cmap: str = "viridis"):
    """One row per layer of :func:`activations` (the maps of one image), one column per channel (the first
    ``max_channels``); each panel has its own colour scale. Layers without a spatial map (after pooling to 1x1,
    flatten, linear) are left out."""
    from cnncourse.plotting import new_figure

    rows = {name: a[0] for name, a in acts.items() if a.ndim == 4 and a.shape[-1] > 1}
    if not rows:
        raise ValueError("no layer with a spatial activation map (N, C, H, W) with H, W > 1 to plot")
    ncols = min(max_channels, max(a.shape[0] for a in rows.values()))
    fig, axes = new_figure(len(rows), ncols, figsize=(1.3 * ncols + 1.2, 1.3 * len(rows)))
    for r, (name, maps) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < maps.shape[0]:
                ax.imshow(maps[c].detach().cpu().numpy(), cmap=cmap)
            else:
                ax.set_visible(False)
        h, w = maps.shape[-2:]
        axes[r, 0].set_ylabel(f"{name}\n{maps.shape[0]}x{h}x{w}", fontsize=8)
    return fig
