"""cnncourse.arithmetic against real torch layers: hundreds of random configurations."""
import random

import pytest
import torch
from torch import nn

from cnncourse import arithmetic as A


def _random_conv(rng):
    while True:
        n, k, s = rng.randint(1, 40), rng.randint(1, 7), rng.randint(1, 4)
        p, d = rng.randint(0, 3), rng.randint(1, 3)
        if n + 2 * p - d * (k - 1) - 1 >= 0:
            return n, k, s, p, d


def test_conv_output_size_matches_torch_on_random_configs():
    rng = random.Random(0)
    checked = 0
    for _ in range(400):
        n, k, s, p, d = _random_conv(rng)
        layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        want = layer(torch.zeros(1, 1, n, n)).shape[-1]
        assert A.conv_output_size(n, k, s, p, d, strict=False) == want
        if (n + 2 * p - d * (k - 1) - 1) % s == 0:
            assert A.conv_output_size(n, k, s, p, d) == want
            checked += 1
        else:
            with pytest.raises(ValueError, match="does not tile"):
                A.conv_output_size(n, k, s, p, d)
    assert checked > 100


def test_non_square_pairs_match_torch():
    rng = random.Random(1)
    for _ in range(150):
        (nh, kh, sh, ph, dh), (nw, kw, sw, pw, dw) = _random_conv(rng), _random_conv(rng)
        layer = nn.Conv2d(1, 1, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
        want = tuple(layer(torch.zeros(1, 1, nh, nw)).shape[-2:])
        got = A.conv_output_size((nh, nw), (kh, kw), (sh, sw), (ph, pw), (dh, dw), strict=False)
        assert got == want


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (5, 1), (3, 2), (4, 1), (2, 3)])
def test_same_and_valid_padding_match_torch(k, d):
    for n in (5, 8, 17):
        x = torch.zeros(1, 1, n, n)
        for mode in ("same", "valid"):
            if mode == "valid" and n < d * (k - 1) + 1:
                continue
            want = nn.Conv2d(1, 1, k, padding=mode, dilation=d)(x).shape[-1]
            assert A.conv_output_size(n, k, padding=mode, dilation=d) == want


def test_pool_output_size_matches_torch():
    rng = random.Random(2)
    for _ in range(300):
        n, k = rng.randint(2, 40), rng.randint(1, 5)
        s, p, ceil = rng.randint(1, 3), rng.randint(0, k // 2), rng.random() < 0.5
        if n + 2 * p < k:
            continue
        want = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, n, n)).shape[-1]
        assert A.pool_output_size(n, k, s, p, ceil_mode=ceil, strict=False) == want, (n, k, s, p, ceil)
        assert nn.AvgPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, n, n)).shape[-1] == want
    assert A.pool_output_size(224, 2) == 112


def test_transposed_conv_output_size_matches_torch():
    rng = random.Random(3)
    for _ in range(300):
        n, k, s, d = rng.randint(1, 20), rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 3)
        op, p = rng.randint(0, max(s, d) - 1), rng.randint(0, 2)
        try:
            want = nn.ConvTranspose2d(1, 1, k, s, p, op, dilation=d)(torch.zeros(1, 1, n, n)).shape[-1]
        except RuntimeError:  # torch refuses a non-positive output size
            with pytest.raises(ValueError, match="padding"):
                A.transposed_conv_output_size(n, k, s, p, op, d)
            continue
        assert A.transposed_conv_output_size(n, k, s, p, op, d) == want


def test_params_and_macs_match_torch():
    from torch.utils.flop_counter import FlopCounterMode

    rng = random.Random(4)
    for _ in range(120):
        g = rng.choice([1, 1, 2, 4])
        c, f = g * rng.randint(1, 6), g * rng.randint(1, 6)
        k, bias = (rng.randint(1, 5), rng.randint(1, 5)), rng.random() < 0.5
        layer = nn.Conv2d(c, f, k, groups=g, bias=bias)
        assert A.conv_params(c, f, k, bias=bias, groups=g) == sum(p.numel() for p in layer.parameters())
        with FlopCounterMode(display=False) as counter:
            out = layer(torch.zeros(1, c, 12, 12))
        assert A.conv_flops(c, f, k, tuple(out.shape[-2:]), groups=g) == counter.get_total_flops()
        assert A.conv_macs(c, f, k, tuple(out.shape[-2:]), groups=g) * 2 == counter.get_total_flops()
    assert A.linear_params(9216, 4096) == sum(p.numel() for p in nn.Linear(9216, 4096).parameters())
    assert A.linear_macs(9216, 4096) == 9216 * 4096


def _measured_rf(layers):
    reach = sum((k - 1) for k, _ in layers) * 64 + 64
    x = torch.ones(1, 1, 1, reach, requires_grad=True)
    net = nn.Sequential(*[nn.Conv2d(1, 1, (1, k), stride=(1, s), bias=False) for k, s in layers])
    for conv in net:
        nn.init.constant_(conv.weight, 1.0)
    y = net(x)
    y[..., y.shape[-1] // 2].sum().backward()
    hit = (x.grad[0, 0, 0] != 0).nonzero().flatten()
    return int(hit.max() - hit.min() + 1)


def test_receptive_field_matches_autograd():
    rng = random.Random(5)
    for _ in range(40):
        layers = [(rng.randint(1, 5), rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
        assert A.receptive_field(layers) == _measured_rf(layers), layers
    assert A.receptive_field([nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3)]) == 8
    assert A.receptive_field([{"kernel": 3, "dilation": 2}]) == 5


def test_layer_table_totals_equal_flop_counter_and_numel():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, groups=4), nn.ReLU(), nn.ConvTranspose2d(32, 8, 2, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    table = A.layer_table(model, (3, 32, 32))
    assert table.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in table) == table.total_params
    assert table.total_macs == A.flop_counter_macs(model, (3, 32, 32))
    assert table.total_flops == 2 * table.total_macs
    assert table[0].out_shape == (16, 16, 16) and table[-1].out_shape == (10,)
    by_type = table.totals_by_type()
    assert by_type["Linear"] == {"params": 90, "macs": 80, "pool_ops": 0}
    assert by_type["MaxPool2d"]["macs"] == 0 and by_type["MaxPool2d"]["pool_ops"] > 0
    assert "| layer |" in table.to_markdown() and "<table>" in table._repr_html_() and "total" in str(table)
    assert model.training, "layer_table must restore the training mode"


@pytest.mark.parametrize("kernel,stride,size", [(2, 2, 8), (3, 2, 11), (3, 1, 7), ((2, 3), (1, 2), 9)])
def test_pool_ops_equal_the_number_of_window_entries(kernel, stride, size):
    # oracle: unfold lists every window's inputs, one column per output position
    x = torch.zeros(1, 5, size, size)
    entries = torch.nn.functional.unfold(x, kernel, stride=stride).numel()
    table = A.layer_table(nn.Sequential(nn.MaxPool2d(kernel, stride)), tuple(x.shape[1:]))
    assert table.total_pool_ops == entries and table.total_macs == 0
    out = A.pool_output_size(size, kernel, stride, strict=False)
    assert A.pool_ops(5, kernel, out) == entries
    avg = A.layer_table(nn.Sequential(nn.AvgPool2d(kernel, stride)), tuple(x.shape[1:]))
    assert avg.total_pool_ops == entries


@pytest.mark.parametrize("size,out", [(7, 3), (6, 4), (5, 5), (9, 2)])
def test_adaptive_pool_ops_use_pytorchs_windows(size, out):
    # oracle: on an increasing ramp the max index is a window's last entry, on a decreasing ramp its first
    ramp = torch.arange(size, dtype=torch.float32)[None, None, None, :].expand(1, 1, 1, size)
    last = torch.nn.functional.adaptive_max_pool2d(ramp, (1, out), return_indices=True)[1]
    first = torch.nn.functional.adaptive_max_pool2d(-ramp, (1, out), return_indices=True)[1]
    per_axis = int((last - first + 1).sum())
    table = A.layer_table(nn.Sequential(nn.AdaptiveAvgPool2d(out)), (3, size, size))
    assert table.total_pool_ops == 3 * per_axis ** 2


def test_pooling_does_not_disturb_the_flop_counter_check():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.AvgPool2d(2),
                          nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    table = A.layer_table(model, (3, 20, 20))
    assert table.total_macs == A.flop_counter_macs(model, (3, 20, 20))   # conv/linear only on both sides
    assert table.total_pool_ops == (8 * 9 * 9 * 4) + (8 * 3 * 3 * 4) + (8 * 3 * 3)
    assert "pool ops" in str(table) and "pool ops" in table.to_markdown()


def test_layer_table_alexnet_conv1():
    table = A.layer_table(nn.Sequential(nn.Conv2d(3, 96, 11, stride=4)), (3, 227, 227))
    assert table[0].out_shape == (96, 55, 55)
    assert table.total_params == 34_944 == A.conv_params(3, 96, 11)
    assert table.total_macs == A.conv_macs(3, 96, 11, 55) == 105_415_200


@pytest.mark.parametrize("call,argument", [
    (lambda: A.conv_output_size(0, 3), "n must be positive"),
    (lambda: A.conv_output_size(7, 0), "kernel must be positive"),
    (lambda: A.conv_output_size(7, 3, stride=0), "stride must be positive"),
    (lambda: A.conv_output_size(7, 3, padding=-1), "padding must be non-negative"),
    (lambda: A.conv_output_size(7, 3, padding="full"), "padding must be"),
    (lambda: A.conv_output_size(7, 3, stride=2, padding="same"), "padding='same' needs stride=1"),
    (lambda: A.conv_output_size(7, 3, dilation=0), "dilation must be positive"),
    (lambda: A.conv_output_size(7.0, 3), "n must be an integer"),
    (lambda: A.conv_output_size(3, 5), "kernel does not fit"),
    (lambda: A.conv_output_size(7, 3, stride=3), "does not tile"),
    (lambda: A.conv_output_size(32, 5, stride=2), "14.5"),
    (lambda: A.conv_output_size((7, 7, 7), 3), "pair"),
    (lambda: A.pool_output_size(8, 2, padding=2), "padding must be at most half"),
    (lambda: A.transposed_conv_output_size(3, 3, stride=2, output_padding=2), "output_padding must be smaller"),
    (lambda: A.transposed_conv_output_size(1, 1, padding=1), "padding=1 is too large"),
    (lambda: A.conv_params(0, 8, 3), "in_channels must be positive"),
    (lambda: A.conv_params(3, 8, 3, groups=2), "groups=2 must divide"),
    (lambda: A.conv_params(3, True, 3), "out_channels must be an integer"),
    (lambda: A.linear_params(10, 0), "out_features must be positive"),
    (lambda: A.conv_macs(3, 8, 3, 0), "out_size must be positive"),
    (lambda: A.receptive_field([]), "layers is empty"),
    (lambda: A.receptive_field([(3, 1), "x"]), r"layers\[1\]"),
    (lambda: A.receptive_field([(3, 0)]), r"layers\[0\].stride"),
    (lambda: A.layer_table("net", (3, 8, 8)), "model must be a torch.nn.Module"),
    (lambda: A.pool_ops(0, 2, 4), "channels must be positive"),
    (lambda: A.pool_ops(3, 2, (4, 0)), "out_size"),
    (lambda: A.layer_table(nn.Identity(), (3, -8, 8)), "input_shape"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


@pytest.mark.parametrize("kernel, dilation", [(1, 1), (3, 1), (3, 2), (5, 3), (2, 4)])
def test_effective_kernel_is_the_span_a_dilated_conv_needs(kernel, dilation):
    span = A.effective_kernel(kernel, dilation)
    conv = torch.nn.Conv2d(1, 1, kernel, dilation=dilation)
    assert conv(torch.zeros(1, 1, span, span)).shape[-1] == 1  # fits exactly once in `span` pixels
    with pytest.raises(RuntimeError):
        conv(torch.zeros(1, 1, span - 1, span - 1))  # and not in one pixel less
