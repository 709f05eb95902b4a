"""cnncourse.models: shapes, parameter counts and state_dict keys equal to torchvision's, pretrained loading.

The expected key lists below are written out from torchvision's published architectures (torchvision
0.2x ``models/alexnet.py``, ``vgg.py``, ``resnet.py``); torchvision itself is not installed. Big ImageNet
models are built on the ``meta`` device: shapes and parameter counts without allocating memory.
"""
import hashlib
import re

import pytest
import torch
from torch import nn

from cnncourse import models as M

TORCHVISION_PARAMS = {  # torchvision.models.<name>(): sum(p.numel() for p in m.parameters())
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}

ALEXNET_KEYS = """
features.0.weight 64 3 11 11
features.0.bias 64
features.3.weight 192 64 5 5
features.3.bias 192
features.6.weight 384 192 3 3
features.6.bias 384
features.8.weight 256 384 3 3
features.8.bias 256
features.10.weight 256 256 3 3
features.10.bias 256
classifier.1.weight 4096 9216
classifier.1.bias 4096
classifier.4.weight 4096 4096
classifier.4.bias 4096
classifier.6.weight 1000 4096
classifier.6.bias 1000
"""

VGG16_KEYS = """
features.0.weight 64 3 3 3
features.0.bias 64
features.2.weight 64 64 3 3
features.2.bias 64
features.5.weight 128 64 3 3
features.5.bias 128
features.7.weight 128 128 3 3
features.7.bias 128
features.10.weight 256 128 3 3
features.10.bias 256
features.12.weight 256 256 3 3
features.12.bias 256
features.14.weight 256 256 3 3
features.14.bias 256
features.17.weight 512 256 3 3
features.17.bias 512
features.19.weight 512 512 3 3
features.19.bias 512
features.21.weight 512 512 3 3
features.21.bias 512
features.24.weight 512 512 3 3
features.24.bias 512
features.26.weight 512 512 3 3
features.26.bias 512
features.28.weight 512 512 3 3
features.28.bias 512
classifier.0.weight 4096 25088
classifier.0.bias 4096
classifier.3.weight 4096 4096
classifier.3.bias 4096
classifier.6.weight 1000 4096
classifier.6.bias 1000
"""

# ResNet-18 convolution/linear weights; every "bnX" / "downsample.1" is a BatchNorm2d with the five entries
# weight, bias, running_mean, running_var, num_batches_tracked (added in the test).
RESNET18_KEYS = """
conv1.weight 64 3 7 7
bn1 64
layer1.0.conv1.weight 64 64 3 3
layer1.0.bn1 64
layer1.0.conv2.weight 64 64 3 3
layer1.0.bn2 64
layer1.1.conv1.weight 64 64 3 3
layer1.1.bn1 64
layer1.1.conv2.weight 64 64 3 3
layer1.1.bn2 64
layer2.0.conv1.weight 128 64 3 3
layer2.0.bn1 128
layer2.0.conv2.weight 128 128 3 3
layer2.0.bn2 128
layer2.0.downsample.0.weight 128 64 1 1
layer2.0.downsample.1 128
layer2.1.conv1.weight 128 128 3 3
layer2.1.bn1 128
layer2.1.conv2.weight 128 128 3 3
layer2.1.bn2 128
layer3.0.conv1.weight 256 128 3 3
layer3.0.bn1 256
layer3.0.conv2.weight 256 256 3 3
layer3.0.bn2 256
layer3.0.downsample.0.weight 256 128 1 1
layer3.0.downsample.1 256
layer3.1.conv1.weight 256 256 3 3
layer3.1.bn1 256
layer3.1.conv2.weight 256 256 3 3
layer3.1.bn2 256
layer4.0.conv1.weight 512 256 3 3
layer4.0.bn1 512
layer4.0.conv2.weight 512 512 3 3
layer4.0.bn2 512
layer4.0.downsample.0.weight 512 256 1 1
layer4.0.downsample.1 512
layer4.1.conv1.weight 512 512 3 3
layer4.1.bn1 512
layer4.1.conv2.weight 512 512 3 3
layer4.1.bn2 512
fc.weight 1000 512
fc.bias 1000
"""


def parse_keys(text: str) -> dict[str, tuple]:
    """'name d0 d1 ...' lines -> {key: shape}; a bare BatchNorm name expands to its five state entries."""
    keys = {}
    for line in text.strip().splitlines():
        name, *dims = line.split()
        shape = tuple(int(d) for d in dims)
        if re.search(r"(^|\.)(bn\d|downsample\.1)$", name):
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{name}.{suffix}"] = shape
            keys[f"{name}.num_batches_tracked"] = ()
        else:
            keys[name] = shape
    return keys


def on_meta(factory, *args, **kwargs):
    with torch.device("meta"):
        return factory(*args, **kwargs)


def shapes_of(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_equal_torchvision(name):
    model = on_meta(getattr(M, name))
    assert M.count_params(model) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name, text", [("alexnet", ALEXNET_KEYS), ("vgg16", VGG16_KEYS),
                                        ("resnet18", RESNET18_KEYS)])
def test_state_dict_keys_and_shapes_equal_torchvision(name, text):
    expected = parse_keys(text)
    actual = shapes_of(on_meta(getattr(M, name)))
    assert list(actual) == list(expected), "same keys in the same order as torchvision"
    assert actual == expected


def test_resnet34_and_50_structure_matches_torchvision():
    r34 = shapes_of(on_meta(M.resnet34))
    assert len(r34) == 218
    assert r34["layer3.5.conv2.weight"] == (256, 256, 3, 3)
    r50 = on_meta(M.resnet50)
    keys = shapes_of(r50)
    assert len(keys) == 320
    assert keys["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert keys["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)  # projection: 64 -> 4*64 channels
    assert keys["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert keys["fc.weight"] == (1000, 2048)
    # "ResNet v1.5" as torchvision: the stride sits on the 3x3 conv of the bottleneck, not on the first 1x1
    assert r50.layer2[0].conv1.stride == (1, 1) and r50.layer2[0].conv2.stride == (2, 2)


def test_vgg_batch_norm_variant_matches_torchvision_vgg16_bn():
    model = on_meta(M.vgg16, batch_norm=True)
    assert M.count_params(model) == 138_365_992
    assert shapes_of(model)["features.1.running_mean"] == (64,)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50"])
def test_imagenet_models_map_224_images_to_1000_logits(name):
    model = on_meta(getattr(M, name))
    with torch.device("meta"):
        out = model(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 1000)


def test_num_classes_replaces_only_the_head():
    model = on_meta(M.resnet18, num_classes=7)
    assert shapes_of(model)["fc.weight"] == (7, 512)
    assert shapes_of(on_meta(M.vgg16, num_classes=5))["classifier.6.weight"] == (5, 4096)


@pytest.mark.parametrize("factory, x_shape, params", [
    (lambda: M.lenet5(), (2, 1, 28, 28), 61_706),
    (lambda: M.lenet5(input_size=32), (2, 1, 32, 32), 61_706),
    (lambda: M.resnet20(), (2, 3, 32, 32), 272_474),
    (lambda: M.plain_net(20), (2, 3, 32, 32), None),
    (lambda: M.all_cnn_c(), (2, 3, 32, 32), 1_369_738),
    (lambda: M.small_vgg(10), (2, 3, 32, 32), None),
    (lambda: M.small_cnn(10, 3), (2, 3, 32, 32), 5_466),
    (lambda: M.small_cnn(10, 1), (2, 1, 8, 8), None),
    (lambda: M.mlp(3 * 32 * 32, 10, hidden=(64, 32)), (2, 3, 32, 32), None),
])
def test_small_models_give_logits(factory, x_shape, params):
    torch.manual_seed(0)
    model = factory()
    out = model(torch.randn(x_shape))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    if params is not None:
        assert M.count_params(model) == params


def test_plain_net_is_resnet20_without_shortcuts():
    plain, res = M.plain_net(20), M.resnet20()
    plain_keys, res_keys = set(plain.state_dict()), set(res.state_dict())
    assert plain_keys < res_keys
    assert all("downsample" in k for k in res_keys - plain_keys)
    conv_layers = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv_layers) + 1 == 20  # 19 convs + the fc layer
    assert M.count_params(M.plain_net(56, skip=True)) > M.count_params(res)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        M.plain_net(21)


def test_basic_block_with_zero_residual_is_relu_of_identity():
    block = M.BasicBlock(8, 8).eval()
    nn.init.zeros_(block.bn2.weight)  # F(x) = 0, so out = relu(0 + x)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))
    block.skip = False
    torch.testing.assert_close(block(x), torch.zeros_like(x))


def test_projection_shortcut_when_shape_changes():
    model = M.resnet20()
    assert model.layer1[0].downsample is None
    assert isinstance(model.layer2[0].downsample[0], nn.Conv2d)
    assert model.layer2[0].downsample[0].kernel_size == (1, 1) and model.layer2[0].downsample[0].stride == (2, 2)
    x = torch.randn(1, 16, 32, 32)
    assert model.layer2[0](x).shape == (1, 32, 16, 16)


def test_bottleneck_expands_by_four():
    block = M.Bottleneck(64, 16, downsample=nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), nn.BatchNorm2d(64)))
    assert M.Bottleneck.expansion == 4
    assert block(torch.randn(1, 64, 7, 7)).shape == (1, 64, 7, 7)


def test_zero_init_residual_zeroes_last_bn_of_each_block():
    model = M.ResNet(M.BasicBlock, (1, 1, 1), 10, widths=(8, 16, 32), stem="cifar", zero_init_residual=True)
    assert all(not b.bn2.weight.detach().any() for b in model.modules() if isinstance(b, M.BasicBlock))
    with pytest.raises(ValueError, match="stem"):
        M.ResNet(M.BasicBlock, (1,), stem="tiny")


def test_all_cnn_c_has_no_pooling_or_linear_layers():
    model = M.all_cnn_c()
    kinds = {type(m) for m in model.modules()}
    assert nn.MaxPool2d not in kinds and nn.Linear not in kinds
    assert sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in model.modules()) == 2


def test_model_c_family_differs_only_in_how_each_stage_downsamples():
    """Springenberg et al. Table 2: same head; Strided drops the pool, ConvPool and All-CNN add one 3x3 conv."""
    def kinds(model):
        return [(type(m).__name__, getattr(m, "stride", None)) for m in model if not isinstance(m, nn.ReLU)]

    nets = {v: M.model_c_family(v) for v in M.MODEL_C_VARIANTS}
    pools = {v: sum(isinstance(m, nn.MaxPool2d) for m in n) for v, n in nets.items()}
    strided = {v: sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in n) for v, n in nets.items()}
    assert pools == {"model_c": 2, "strided_cnn_c": 0, "convpool_cnn_c": 2, "all_cnn_c": 0}
    assert strided == {"model_c": 0, "strided_cnn_c": 2, "convpool_cnn_c": 0, "all_cnn_c": 2}
    assert len({tuple(kinds(n)[-5:]) for n in nets.values()}) == 1          # identical head
    a, b = 96, 192
    extra = 9 * a * a + a + 9 * b * b + b                                   # one more 3x3 conv per stage
    assert M.count_params(nets["model_c"]) == M.count_params(nets["strided_cnn_c"])
    assert M.count_params(nets["convpool_cnn_c"]) == M.count_params(nets["all_cnn_c"]) \
        == M.count_params(nets["model_c"]) + extra
    assert M.count_params(M.model_c()) == M.count_params(nets["model_c"])
    assert M.count_params(M.strided_cnn_c()) == M.count_params(M.convpool_cnn_c()) - extra


@pytest.mark.parametrize("variant", list(M.MODEL_C_VARIANTS))
def test_model_c_family_maps_32x32_to_6x6_before_global_average(variant):
    model = M.model_c_family(variant, num_classes=4, widths=(8, 16), batch_norm=True, dropout=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before_gap = model[:-2](x)
        assert before_gap.shape == (2, 4, 6, 6)
        torch.testing.assert_close(model(x), before_gap.mean((2, 3)))


def test_model_c_family_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        M.model_c_family("all_cnn_d")


def test_depthwise_separable_conv_params_and_shape():
    block = M.DepthwiseSeparableConv(32, 64, stride=2)
    assert block.depthwise.groups == 32
    conv_params = 32 * 3 * 3 + 32 * 64  # depthwise + pointwise, no biases
    bn_params = 2 * 32 + 2 * 64
    assert M.count_params(block) == conv_params + bn_params
    assert conv_params < 32 * 64 * 3 * 3 / 7  # ~8x fewer than a full 3x3 conv
    assert block(torch.randn(2, 32, 16, 16)).shape == (2, 64, 8, 8)


def test_squeeze_excitation_rescales_channels():
    se = M.SqueezeExcitation(32, reduction=8)
    assert se.fc1.out_channels == 4
    x = torch.randn(2, 32, 6, 6)
    out = se(x)
    scale = out / x
    # one factor in (0, 1) per (image, channel), the same at every pixel
    assert ((scale > 0) & (scale < 1)).all()
    torch.testing.assert_close(scale, scale[:, :, :1, :1].expand_as(scale))


def test_inception_block_concatenates_branches():
    block = M.InceptionBlock()
    assert block.out_channels == 256
    assert block(torch.randn(1, 192, 14, 14)).shape == (1, 256, 14, 14)
    small = M.InceptionBlock(8, 4, 4, 8, 2, 4, 4)
    assert small(torch.randn(1, 8, 5, 5)).shape == (1, 20, 5, 5)


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def test_googlenet_modules_follow_table1_and_torchvision_count():
    net = M.googlenet(aux_logits=False)
    modules = [item for item in M.GOOGLENET_CONFIG if item != "M"]
    assert list(net.inception) == [name for name, _ in modules] and len(modules) == 9
    ch = 192
    for name, (c1, r3, c3, r5, c5, pp) in modules:
        expected = ch * c1 + ch * r3 + 9 * r3 * c3 + ch * r5 + 25 * r5 * c5 + ch * pp
        assert _conv_weights(net.inception[name]) == expected, name
        ch = c1 + c3 + c5 + pp
    assert ch == 1024 and net.fc.in_features == 1024
    # torchvision's googlenet has 6,624,904 parameters; it uses 3x3 kernels in the "5x5" branch
    five_by_five_excess = sum(16 * r5 * c5 for _, (_, _, _, r5, c5, _) in modules)
    assert M.count_params(net) == 6_624_904 + five_by_five_excess


def test_googlenet_aux_heads_only_in_training():
    net = M.googlenet(num_classes=7)
    seen = {}
    net.aux1.register_forward_pre_hook(lambda m, inp: seen.update(aux1=tuple(inp[0].shape)))
    net.train()
    logits, aux1, aux2 = net(torch.randn(2, 3, 224, 224))
    assert logits.shape == aux1.shape == aux2.shape == (2, 7)
    assert seen["aux1"] == (2, 512, 14, 14)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 7)
    aux_params = M.count_params(net.aux1)
    assert aux_params == M.count_params(M.InceptionAux(512, 7))
    assert M.count_params(net) - M.count_params(M.googlenet(7, aux_logits=False)) == aux_params + M.count_params(net.aux2)


def test_inverted_residual_is_linear_at_the_thin_end():
    block = M.InvertedResidual(16, 16, stride=1, expand_ratio=6)
    hidden = 16 * 6
    assert _conv_weights(block) == 16 * hidden + 9 * hidden + hidden * 16
    assert block.use_residual and isinstance(block.conv[-1], nn.BatchNorm2d)     # no ReLU after the projection
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block.eval()(x), x + block.conv(x))
    down = M.InvertedResidual(16, 24, stride=2).eval()
    with torch.no_grad():
        out = down(x)
    assert out.shape == (2, 24, 4, 4) and not down.use_residual and (out < 0).any()
    with pytest.raises(ValueError, match="stride"):
        M.InvertedResidual(16, 16, stride=3)


def test_compound_scaling_follows_the_phi_rule():
    assert M.compound_scaling(0) == (1.0, 1.0, 1.0)
    d, w, r = M.compound_scaling(2)
    assert (d, w, r) == pytest.approx((1.2 ** 2, 1.1 ** 2, 1.15 ** 2))
    assert d * w ** 2 * r ** 2 == pytest.approx((1.2 * 1.1 ** 2 * 1.15 ** 2) ** 2)
    with pytest.raises(ValueError, match="alpha"):
        M.compound_scaling(1, alpha=0.5)
    for c in (16, 24, 40, 80, 112):
        for mult in (1.0, 1.1, 1.21, 1.4, 2.0):
            rounded = M.round_channels(c, mult)
            assert rounded % 8 == 0 and rounded >= 0.9 * c * mult and abs(rounded - c * mult) <= 8


def test_scaled_mobilenet_grows_with_phi():
    blocks = [sum(isinstance(m, M.InvertedResidual) for m in M.scaled_mobilenet(6, phi)) for phi in (0, 1, 2)]
    assert blocks[0] == 1 + 2 + 2 + 2
    assert blocks[1] == sum(-(-r * 12 // 10) for r in (1, 2, 2, 2))      # ceil(1.2 * repeats)
    assert blocks[2] >= blocks[1]
    net = M.scaled_mobilenet(6, 1)
    assert net(torch.randn(2, 3, 37, 37)).shape == (2, 6)
    assert M.count_params(net) > M.count_params(M.scaled_mobilenet(6, 0))


def test_model_urls_are_torchvisions_files():
    assert set(TORCHVISION_PARAMS) <= set(M.MODEL_URLS)
    for name, url in M.MODEL_URLS.items():
        assert url.startswith("https://download.pytorch.org/models/")
        assert re.fullmatch(rf".*/{name.replace('alexnet', 'alexnet-owt')}-[0-9a-f]{{8}}\.pth", url)


# ------------------------------------------------------------------------------------ load_pretrained
def _save_with_hash_name(state: dict, folder, stem: str):
    """Save like torchvision does: file name <stem>-<first 8 hex digits of its sha256>.pth."""
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = folder / f"{stem}-{digest}.pth"
    tmp.rename(path)
    return path


def test_load_pretrained_round_trip_through_file_url(tmp_path):
    torch.manual_seed(0)
    source = M.resnet18()
    src_dir = tmp_path / "published"
    src_dir.mkdir()
    path = _save_with_hash_name(source.state_dict(), src_dir, "resnet18")
    target = M.resnet18()
    out = M.load_pretrained(target, path.as_uri(), progress=False, check_hash=True, model_dir=tmp_path / "cache")
    assert out is target
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert (tmp_path / "cache" / path.name).is_file()  # downloaded once into the cache folder
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(target.eval()(x), source.eval()(x))


def test_load_pretrained_from_path_and_train_checkpoint(tmp_path):
    source = M.small_cnn(10, 1)
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    for name in ("ckpt.pt", "weights.pt"):
        target = M.load_pretrained(M.small_cnn(10, 1), tmp_path / name)
        assert torch.equal(target[0].weight, source[0].weight)


def test_load_pretrained_accepts_files_without_num_batches_tracked(tmp_path):
    """torchvision's older weight files predate BatchNorm's num_batches_tracked buffer."""
    source = M.resnet20()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    M.load_pretrained(M.resnet20(), tmp_path / "old.pth")


def test_load_pretrained_errors_are_helpful(tmp_path):
    torch.save(M.small_cnn(10, 1).state_dict(), tmp_path / "cnn.pt")
    with pytest.raises(RuntimeError, match="do not fit ResNet.*missing keys"):
        M.load_pretrained(M.resnet20(), tmp_path / "cnn.pt")
    with pytest.raises(FileNotFoundError, match="vgg16"):
        M.load_pretrained(M.resnet20(), tmp_path / "nope.pt")
    with pytest.raises(RuntimeError, match="size mismatch"):
        M.load_pretrained(M.small_cnn(5, 1), tmp_path / "cnn.pt")  # same keys, other head shape


def test_load_pretrained_resolves_model_names_to_torchvision_urls(monkeypatch):
    seen = {}
    model = M.small_cnn(10, 1)

    def fake_load(url, model_dir=None, map_location=None, progress=True, check_hash=False, **kwargs):
        seen.update(url=url, check_hash=check_hash)
        return model.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_load)
    M.load_pretrained(model, "vgg16", check_hash=True)
    assert seen == {"url": "https://download.pytorch.org/models/vgg16-397923af.pth", "check_hash": True}


def test_load_pretrained_offline_message(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="Offline\\?.*local path"):
        M.load_pretrained(M.small_cnn(), "resnet18")
