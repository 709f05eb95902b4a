"""CNN architectures from the lectures, in plain ``torch.nn``.

The ImageNet models (AlexNet, VGG, ResNet-18/34/50) reproduce torchvision's modules exactly: same
``state_dict`` keys, same shapes, same parameter counts (AlexNet 61,100,840; VGG16 138,357,544;
ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032), so torchvision's published weights
load unchanged with :func:`load_pretrained` -- without importing torchvision.

Small models for CPU-sized data (8x8 digits, 28x28 MNIST, 32x32 shapes/CIFAR-10): :func:`lenet5`,
:func:`small_cnn`, :func:`small_vgg`, :func:`resnet20` and its skip-less twin :func:`plain_net`,
:func:`all_cnn_c` with its pooling ablation (:func:`model_c`, :func:`strided_cnn_c`,
:func:`convpool_cnn_c`), :func:`mlp`. Building blocks for lecture 10:
:class:`DepthwiseSeparableConv`, :class:`SqueezeExcitation`, :class:`InceptionBlock`, the full
:class:`GoogLeNet` with :class:`InceptionAux`, MobileNetV2's :class:`InvertedResidual`, EfficientNet's
:func:`compound_scaling` with :func:`scaled_mobilenet`.

Every model takes ``x: (N, C, H, W)`` float32 and returns logits ``(N, num_classes)``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import torch
from torch import nn

__all__ = [
    "MODEL_URLS", "load_pretrained", "count_params",
    "lenet5", "alexnet", "AlexNet", "VGG", "VGG_CONFIGS", "vgg11", "vgg13", "vgg16", "vgg19", "small_vgg",
    "BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet20", "plain_net",
    "MODEL_C_VARIANTS", "model_c_family", "model_c", "strided_cnn_c", "convpool_cnn_c", "all_cnn_c",
    "DepthwiseSeparableConv", "SqueezeExcitation", "InceptionBlock",
    "InceptionAux", "GOOGLENET_CONFIG", "GoogLeNet", "googlenet", "InvertedResidual", "compound_scaling",
    "round_channels", "scaled_mobilenet",
    "small_cnn", "mlp",
]

# torchvision's published ImageNet weights (IMAGENET1K_V1). The 8 hex digits before ".pth" are the
# start of the file's SHA-256, which torch.hub checks when ``check_hash=True``.
_TV = "https://download.pytorch.org/models/"
MODEL_URLS: dict[str, str] = {
    "alexnet": _TV + "alexnet-owt-7be5be79.pth",
    "vgg11": _TV + "vgg11-8a719046.pth",
    "vgg13": _TV + "vgg13-19584684.pth",
    "vgg16": _TV + "vgg16-397923af.pth",
    "vgg19": _TV + "vgg19-dcbb9e9d.pth",
    "vgg11_bn": _TV + "vgg11_bn-6002323d.pth",
    "vgg13_bn": _TV + "vgg13_bn-abd245e5.pth",
    "vgg16_bn": _TV + "vgg16_bn-6c64b313.pth",
    "vgg19_bn": _TV + "vgg19_bn-c79401a0.pth",
    "resnet18": _TV + "resnet18-f37072fd.pth",
    "resnet34": _TV + "resnet34-b627a593.pth",
    "resnet50": _TV + "resnet50-0676ba61.pth",
}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (weights and biases; BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def load_pretrained(model: nn.Module, url_or_path: Union[str, os.PathLike], progress: bool = True,
                    check_hash: bool = False, model_dir: Union[str, os.PathLike, None] = None) -> nn.Module:
    """Load a state_dict into ``model`` (strictly: every key and shape must match) and return the model.

    ``url_or_path`` is a key of :data:`MODEL_URLS` (``"vgg16"``), an ``http(s)://`` or ``file://`` URL
    (downloaded once into ``model_dir``, default ``$TORCH_HOME/hub/checkpoints``, via
    ``torch.hub.load_state_dict_from_url``), or a local file path. A checkpoint written by
    :func:`cnncourse.train.fit` (a dict with a ``"model"`` entry) works too.
    """
    source = str(url_or_path)
    source = MODEL_URLS.get(source, source)
    if "://" in source:
        try:
            state = torch.hub.load_state_dict_from_url(source, model_dir=None if model_dir is None else str(model_dir),
                                                       map_location="cpu", progress=progress,
                                                       check_hash=check_hash, weights_only=True)
        except OSError as err:  # URLError is an OSError
            raise RuntimeError(
                f"Could not download weights from {source} ({err}). Offline? Download the file on a "
                f"connected machine and pass its local path to load_pretrained(model, path).") from err
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            known = ", ".join(sorted(MODEL_URLS))
            raise FileNotFoundError(f"No weights file at {path}. Pass a file path, a URL, or one of: {known}.")
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a cnncourse.train checkpoint
    missing, unexpected = _key_diff(model, state)
    if missing or unexpected:
        raise RuntimeError(
            f"The weights in {source} do not fit {type(model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]}). Build the matching architecture (e.g. vgg16() for vgg16 weights).")
    model.load_state_dict(state, strict=True)
    return model


def _key_diff(model: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    own = model.state_dict().keys()
    # Old BatchNorm files have no num_batches_tracked; load_state_dict fills it in, so it is not "missing".
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    return missing, unexpected


# ---------------------------------------------------------------------------------------------- LeNet
def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> nn.Sequential:
    """LeNet-5 (LeCun et al., 1998): two 5x5 conv + average-pool stages with tanh, then 120-84-classes.

    The original network reads 32x32 images; for 28x28 MNIST the first conv pads by 2, which is the same
    thing. 61,706 parameters for one input channel and 10 classes.
    """
    pad = max(0, (32 - input_size) // 2)
    side = ((input_size + 2 * pad - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.Tanh(),
        nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, num_classes),
    )


# -------------------------------------------------------------------------------------------- AlexNet
class AlexNet(nn.Module):
    """AlexNet as in torchvision (the single-GPU "one weird trick" variant: 64-192-384-256-256 filters)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet(num_classes: int = 1000) -> AlexNet:
    """AlexNet, 61,100,840 parameters for 1000 classes; expects 224x224 RGB (any size >= 63 works)."""
    return AlexNet(num_classes)


# ------------------------------------------------------------------------------------------------ VGG
# Numbers are 3x3 conv widths, "M" a 2x2 max pool. A/B/D/E are the columns of Table 1 in Simonyan &
# Zisserman (2015): VGG11/13/16/19.
VGG_CONFIGS: dict[str, list] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _vgg_features(config: Sequence, in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG as in torchvision: ``features`` (conv stacks), ``avgpool`` to 7x7, three-layer ``classifier``."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _vgg(name: str, num_classes: int, batch_norm: bool) -> VGG:
    return VGG(_vgg_features(VGG_CONFIGS[name], batch_norm=batch_norm), num_classes)


def vgg11(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG11 (config A), 132,863,336 parameters."""
    return _vgg("vgg11", num_classes, batch_norm)


def vgg13(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG13 (config B), 133,047,848 parameters."""
    return _vgg("vgg13", num_classes, batch_norm)


def vgg16(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG16 (config D), 138,357,544 parameters; weights: ``load_pretrained(vgg16(), "vgg16")``."""
    return _vgg("vgg16", num_classes, batch_norm)


def vgg19(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG19 (config E), 143,667,240 parameters."""
    return _vgg("vgg19", num_classes, batch_norm)


def small_vgg(num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128),
              convs_per_stage: int = 2, batch_norm: bool = True, dropout: float = 0.3) -> nn.Module:
    """A VGG-style net for 32x32 data: per width, ``convs_per_stage`` 3x3 convs then a 2x2 max pool;
    then global average pooling, dropout and one linear layer. Keys follow VGG (``features``, ``classifier``)."""
    config: list = []
    for w in widths:
        config += [w] * convs_per_stage + ["M"]
    return SmallVGG(
        features=_vgg_features(config, in_channels, batch_norm),
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        classifier=nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_classes)),
    )


class SmallVGG(nn.Sequential):
    """nn.Sequential with named children (``features``, ``avgpool``, ``flatten``, ``classifier``), run in order."""

    def __init__(self, **children: nn.Module):
        super().__init__()
        for name, module in children.items():
            self.add_module(name, module)


# --------------------------------------------------------------------------------------------- ResNet
def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm: ``relu(F(x) + shortcut(x))`` (He et al., 2016).

    ``downsample`` is the projection shortcut (1x1 conv + BN) used when stride or width changes; with
    ``skip=False`` there is no shortcut at all (a "plain" block, for the degradation experiment).
    """

    expansion = 1

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, downsample: nn.Module | None = None,
                 skip: bool = True):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = downsample
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride, "ResNet v1.5" as torchvision) -> 1x1 expand by ``expansion=4``."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None,
                 skip: bool = True):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet built from a block type and the number of blocks per stage.

    ``stem="imagenet"``: 7x7/2 conv + 3x3/2 max pool, stages ``layer1..layer4`` (torchvision keys).
    ``stem="cifar"``: one 3x3 conv, for 32x32 inputs (ResNet-20/32/56 use widths 16-32-64).
    Each stage after the first halves the resolution (stride 2 in its first block).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 num_classes: int = 1000, widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet",
                 in_channels: int = 3, skip: bool = True, zero_init_residual: bool = False):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.skip = skip
        self.in_ch = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.in_ch, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = _conv3x3(in_channels, self.in_ch)
        self.bn1 = nn.BatchNorm2d(self.in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        for i, (width, blocks) in enumerate(zip(widths, layers)):
            self.add_module(f"layer{i + 1}", self._make_layer(block, width, blocks, stride=1 if i == 0 else 2))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[len(layers) - 1] * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each residual branch starts as zero: the block starts as the identity
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def _make_layer(self, block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if self.skip and (stride != 1 or self.in_ch != width * block.expansion):
            downsample = nn.Sequential(_conv1x1(self.in_ch, width * block.expansion, stride),
                                       nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.in_ch, width, stride, downsample, skip=self.skip)]
        self.in_ch = width * block.expansion
        layers += [block(self.in_ch, width, skip=self.skip) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: BasicBlock x (2, 2, 2, 2), 11,689,512 parameters, 1.8 GFLOPs at 224x224."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    """ResNet-34: BasicBlock x (3, 4, 6, 3), 21,797,672 parameters, 3.6 GFLOPs."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: Bottleneck x (3, 4, 6, 3), 25,557,032 parameters, 4.1 GFLOPs (3.8 in the paper's v1)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


def resnet20(num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64),
             skip: bool = True) -> ResNet:
    """CIFAR-style ResNet-20 (He et al., 2016, Sec. 4.2): 3x3 stem, 3 stages x 3 BasicBlocks (16/32/64
    filters), global average pooling, linear; projection shortcuts where the shape changes."""
    return ResNet(BasicBlock, (3, 3, 3), num_classes, widths=widths, stem="cifar", in_channels=in_channels,
                  skip=skip)


def plain_net(depth: int = 20, num_classes: int = 10, in_channels: int = 3,
              widths: Sequence[int] = (16, 32, 64), skip: bool = False) -> ResNet:
    """A CIFAR-style net of ``depth = 6n + 2`` layers; the same as ``resnet20`` (depth 20) but without skip
    connections. ``skip=True`` gives the ResNet of that depth (ResNet-32, -44, -56, ...)."""
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (8, 14, 20, 32, 44, 56, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, (n, n, n), num_classes, widths=widths, stem="cifar", in_channels=in_channels,
                  skip=skip)


# ------------------------------------------------------------------------------ All-convolutional net
def _conv_relu(in_ch, out_ch, kernel, stride=1, padding=0, batch_norm=False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return layers + [nn.ReLU(inplace=True)]


# Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All Convolutional Net" (arXiv
# 2014, ICLR 2015 workshop track), Tables 1-2: base Model C and the three networks derived from it. They differ
# only in how each of the two stages ends; all share the same head (3x3 valid conv -> 6x6, 1x1, 1x1 to classes,
# global average pooling).
MODEL_C_VARIANTS: dict[str, str] = {
    "model_c": "two 3x3 convs, then 3x3/2 max pooling",
    "strided_cnn_c": "two 3x3 convs, the second with stride 2 (the pooling removed)",
    "convpool_cnn_c": "three 3x3 convs, then 3x3/2 max pooling (the extra conv matches All-CNN-C's depth)",
    "all_cnn_c": "two 3x3 convs, then a 3x3 conv with stride 2 in place of the pooling",
}


def model_c_family(variant: str, num_classes: int = 10, in_channels: int = 3,
                   widths: tuple[int, int] = (96, 192), batch_norm: bool = False,
                   dropout: bool = True) -> nn.Sequential:
    """One network of the pooling ablation of Springenberg et al. (Table 2), chosen by ``variant``
    (a key of :data:`MODEL_C_VARIANTS`). ``widths=(96, 192)`` are the paper's; smaller widths train on a CPU.

    ``dropout=True``: the paper's 20% dropout on the input and 50% after each downsampling step.
    ``batch_norm=True`` adds BN after every conv but the last (the paper has none; it speeds up short runs).
    For 32x32 inputs the two downsampling steps give 16x16 and 8x8 maps, the valid 3x3 conv 6x6, which the
    global average pooling reduces to one score per class.
    """
    if variant not in MODEL_C_VARIANTS:
        raise ValueError(f"variant must be one of {list(MODEL_C_VARIANTS)}, got {variant!r}")
    layers: list[nn.Module] = [nn.Dropout(0.2)] if dropout else []
    ch = in_channels
    for width in widths:
        convs = 3 if variant == "convpool_cnn_c" else 2
        for i in range(convs):
            stride = 2 if variant == "strided_cnn_c" and i == convs - 1 else 1
            layers += _conv_relu(ch, width, 3, stride=stride, padding=1, batch_norm=batch_norm)
            ch = width
        if variant in ("model_c", "convpool_cnn_c"):
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        elif variant == "all_cnn_c":
            layers += _conv_relu(ch, width, 3, stride=2, padding=1, batch_norm=batch_norm)  # replaces the pool
        layers += [nn.Dropout(0.5)] if dropout else []
    b = widths[1]
    layers += _conv_relu(b, b, 3, batch_norm=batch_norm)  # valid: 8x8 -> 6x6
    layers += _conv_relu(b, b, 1, batch_norm=batch_norm)
    layers += [nn.Conv2d(b, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def model_c(num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int] = (96, 192),
            batch_norm: bool = False, dropout: bool = True) -> nn.Sequential:
    """Model C (Springenberg et al., Table 1): 3x3 convs with 3x3/2 max pooling, 1x1 convs, global average pooling."""
    return model_c_family("model_c", num_classes, in_channels, widths, batch_norm, dropout)


def strided_cnn_c(num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int] = (96, 192),
                  batch_norm: bool = False, dropout: bool = True) -> nn.Sequential:
    """Strided-CNN-C: Model C with each max pool removed and the conv before it given stride 2."""
    return model_c_family("strided_cnn_c", num_classes, in_channels, widths, batch_norm, dropout)


def convpool_cnn_c(num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int] = (96, 192),
                   batch_norm: bool = False, dropout: bool = True) -> nn.Sequential:
    """ConvPool-CNN-C: Model C with an extra 3x3 conv before each max pool (the control for All-CNN-C's depth)."""
    return model_c_family("convpool_cnn_c", num_classes, in_channels, widths, batch_norm, dropout)


def all_cnn_c(num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int] = (96, 192),
              batch_norm: bool = False, dropout: bool = True) -> nn.Sequential:
    """All-CNN-C (Springenberg et al.): no pooling layers and no fully connected layers.

    3x3 convs; 3x3 stride-2 convs where Model C has max pooling; a 1x1 conv to ``num_classes`` maps and
    global average pooling as the classifier. 1,369,738 parameters with the paper's widths (96, 192).
    """
    return model_c_family("all_cnn_c", num_classes, in_channels, widths, batch_norm, dropout)


# --------------------------------------------------------------------------- Efficient-CNN building blocks
class DepthwiseSeparableConv(nn.Module):
    """MobileNet block: 3x3 depthwise conv (``groups=in_ch``, one filter per channel) + BN + ReLU, then a
    1x1 pointwise conv mixing channels + BN + ReLU. Parameters ~ 9*in + in*out instead of 9*in*out."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride, padding=1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.pointwise(self.relu(self.bn1(self.depthwise(x))))))


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): global average pool ("squeeze") -> 1x1 conv to
    ``channels // reduction`` -> ReLU -> 1x1 conv back -> sigmoid gives one weight per channel ("excitation"),
    which rescales the input. Same key names as torchvision's ``SqueezeExcitation`` (``fc1``, ``fc2``)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        squeezed = max(1, channels // reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return x * scale


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, padding: int = 0, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """GoogLeNet Inception module: four parallel branches concatenated along channels --
    1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3 max pool -> 1x1. The 1x1 "reduce" convs are the
    bottlenecks that make the 3x3/5x5 branches affordable. Defaults are inception (3a): 192 -> 256 channels."""

    def __init__(self, in_ch: int = 192, ch1x1: int = 64, ch3x3red: int = 96, ch3x3: int = 128,
                 ch5x5red: int = 16, ch5x5: int = 32, pool_proj: int = 32):
        super().__init__()
        self.branch1 = _conv_bn_relu(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(_conv_bn_relu(in_ch, ch3x3red, 1), _conv_bn_relu(ch3x3red, ch3x3, 3, 1))
        self.branch3 = nn.Sequential(_conv_bn_relu(in_ch, ch5x5red, 1), _conv_bn_relu(ch5x5red, ch5x5, 5, 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_bn_relu(in_ch, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier (Szegedy et al., 2015, section 5), attached to a 14x14 map: 5x5 average
    pool with stride 3 (-> 4x4) -> 1x1 conv to 128 channels -> FC 1024 + ReLU -> dropout 0.7 -> FC to classes.
    Used only in training (its loss is added with weight 0.3) and discarded at inference."""

    def __init__(self, in_ch: int, num_classes: int = 1000, dropout: float = 0.7):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv = _conv_bn_relu(in_ch, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


# GoogLeNet's Table 1: per inception module (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); "M" is a
# 3x3 max pool with stride 2.
GOOGLENET_CONFIG: list = [
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128)), "M",
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
]


class GoogLeNet(nn.Module):
    """GoogLeNet (Szegedy et al., 2015, Table 1) for 224x224 inputs, with BatchNorm after every convolution
    (as torchvision's version; the paper used local response normalisation, which has no parameters).

    Stem 7x7/2 conv, max pool, 1x1 + 3x3 convs, max pool; nine inception modules (:data:`GOOGLENET_CONFIG`)
    with two more max pools; global average pooling, dropout 0.4 and one linear layer. With ``aux_logits`` two
    :class:`InceptionAux` heads sit on modules 4a and 4d; in training mode ``forward`` then returns
    ``(logits, aux1, aux2)``, in evaluation mode only ``logits``.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.4):
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn_relu(3, 64, 7, padding=3, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True),
            _conv_bn_relu(64, 64, 1), _conv_bn_relu(64, 192, 3, padding=1), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.inception = nn.ModuleDict()
        self.pools = {}                      # module name -> apply a max pool after it
        ch = 192
        for i, item in enumerate(GOOGLENET_CONFIG):
            if item == "M":
                self.pools[GOOGLENET_CONFIG[i - 1][0]] = True
                continue
            name, spec = item
            self.inception[name] = InceptionBlock(ch, *spec)
            ch = self.inception[name].out_channels
        self.maxpool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor):
        x = self.stem(x)
        aux = []
        for name, module in self.inception.items():
            x = module(x)
            if name in ("4a", "4d") and self.aux1 is not None and self.training:
                aux.append((self.aux1 if name == "4a" else self.aux2)(x))
            if name in self.pools:
                x = self.maxpool(x)
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (logits, *aux) if aux else logits


def googlenet(num_classes: int = 1000, aux_logits: bool = True) -> GoogLeNet:
    """GoogLeNet / Inception v1 with BatchNorm; see :class:`GoogLeNet`."""
    return GoogLeNet(num_classes, aux_logits)


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., 2018): 1x1 conv *expands* ``in_ch`` by ``expand_ratio`` (+BN+ReLU6),
    3x3 depthwise conv (+BN+ReLU6), then a *linear* 1x1 projection to ``out_ch`` (BN, no ReLU: the linear
    bottleneck). The skip connection joins the two thin ends (stride 1 and ``in_ch == out_ch``) -- the inverse
    of ResNet's bottleneck, whose skip joins the wide ends."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand_ratio: int = 6):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = in_ch * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
                     ) -> tuple[float, float, float]:
    """EfficientNet's compound scaling (Tan & Le, 2019, eq. 3): multipliers ``(depth, width, resolution) =
    (alpha**phi, beta**phi, gamma**phi)``. FLOPs grow about ``(alpha * beta**2 * gamma**2)**phi`` (~1.92**phi
    for the paper's grid-searched alpha, beta, gamma, chosen so that the product is about 2)."""
    if min(alpha, beta, gamma) < 1:
        raise ValueError(f"alpha, beta, gamma must be >= 1 (they scale the network up), got {alpha}, {beta}, {gamma}")
    return alpha ** phi, beta ** phi, gamma ** phi


def round_channels(channels: int, width_mult: float, divisor: int = 8) -> int:
    """``channels * width_mult`` rounded to a multiple of ``divisor`` (never down by more than 10%), the
    rounding MobileNet and EfficientNet apply to every scaled width."""
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_mobilenet(num_classes: int = 10, phi: float = 0.0, in_channels: int = 3,
                     stages: Sequence[tuple[int, int, int]] = ((16, 1, 1), (24, 2, 2), (40, 2, 2), (80, 2, 2)),
                     expand_ratio: int = 6) -> nn.Sequential:
    """A small MobileNetV2-style net of :class:`InvertedResidual` blocks, scaled by :func:`compound_scaling`:
    ``stages`` lists ``(channels, repeats, stride of the first block)`` at ``phi = 0``; ``phi`` multiplies
    repeats by ``alpha**phi`` (rounded up) and channels by ``beta**phi`` (:func:`round_channels`). The input
    resolution (``gamma**phi``) is the caller's choice. Stem: 3x3 conv to 16 channels; head: GAP + linear."""
    depth, width, _ = compound_scaling(phi)
    stem = round_channels(16, width)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                               nn.ReLU6(inplace=True)]
    ch = stem
    for channels, repeats, stride in stages:
        out = round_channels(channels, width)
        for i in range(math.ceil(repeats * depth)):
            layers.append(InvertedResidual(ch, out, stride if i == 0 else 1, expand_ratio))
            ch = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------- Small nets
def small_cnn(num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (16, 32),
              batch_norm: bool = True) -> nn.Sequential:
    """A small CNN for 8x8 to 32x32 inputs: per width a 3x3 conv (+BN) + ReLU + 2x2 max pool, then global
    average pooling and one linear layer. Default for 3 channels / 10 classes: 5,466 parameters."""
    layers: list[nn.Module] = []
    ch = in_channels
    for w in widths:
        layers += _conv_relu(ch, w, 3, padding=1, batch_norm=batch_norm) + [nn.MaxPool2d(2)]
        ch = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(*layers)


def mlp(in_features: int, num_classes: int = 10, hidden: Union[int, Sequence[int]] = 128,
        dropout: float = 0.0) -> nn.Sequential:
    """Fully connected baseline: flatten ``(N, C, H, W)`` to ``(N, C*H*W)`` -> hidden layers with ReLU -> classes.
    ``in_features`` is C*H*W; ``hidden`` an int or a list of widths."""
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_features
    for h in widths:
        layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
        prev = h
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)
