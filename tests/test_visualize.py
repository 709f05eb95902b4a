"""cnncourse.visualize: activations, receptive boxes, top patches, activation maximisation, saliency, occlusion,
penultimate features and PCA, each against an independent computation."""
import pytest
import torch
from torch import nn

from cnncourse import arithmetic, models, visualize as viz


@pytest.fixture
def net():
    torch.manual_seed(0)
    return models.small_cnn(4, 3, widths=(4, 8)).eval()


def test_activations_follow_the_sequential(net):
    x = torch.randn(2, 3, 16, 16)
    acts = viz.activations(net, x)
    assert list(acts) == [f"{i} {type(m).__name__}" for i, m in enumerate(net)]
    assert torch.allclose(acts[f"{len(net) - 1} Linear"], net(x))
    assert acts["3 MaxPool2d"].shape == (2, 4, 8, 8)
    assert (acts["1 BatchNorm2d"] < 0).any() and not (acts["2 ReLU"] < 0).any()   # the in-place ReLU left BN's output alone
    with pytest.raises(ValueError, match="x\\[None\\]"):
        viz.activations(net, torch.randn(3, 16, 16))


def test_features_before_head_is_the_input_of_the_last_linear(net):
    x = torch.randn(5, 3, 16, 16)
    feats = viz.features_before_head(net, x, batch_size=2)
    with torch.no_grad():
        expected = net[:-1](x)
    assert torch.allclose(feats, expected)
    with pytest.raises(ValueError, match="no nn.Linear"):
        viz.features_before_head(nn.Sequential(nn.Conv2d(3, 2, 3)), x)


@pytest.mark.parametrize("layers", [
    [nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, padding=1)],
    [nn.Conv2d(1, 1, 5, stride=2, padding=2), nn.Conv2d(1, 1, 3, dilation=2)],
    [nn.Conv2d(1, 1, 3), nn.AvgPool2d(3, stride=2, padding=1), nn.Conv2d(1, 1, 1)],
])
def test_receptive_box_equals_the_support_of_the_gradient(layers):
    # A linear stack (no ReLU) with positive weights: the input pixels a unit depends on are exactly those with a
    # non-zero gradient, which autograd finds without any formula. (Average pooling, not max pooling: max pooling
    # has the same window geometry but sends the gradient to one pixel per window.)
    torch.manual_seed(0)
    stack = nn.Sequential(*layers)
    for m in stack:
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)
    x = torch.randn(1, 1, 40, 40, requires_grad=True)
    out = stack(x)
    for y, xx in [(0, 0), (3, 2), (out.shape[2] - 1, out.shape[3] - 1)]:
        grad, = torch.autograd.grad(out[0, 0, y, xx], x, retain_graph=True)
        rows, cols = grad[0, 0].abs().sum(1).nonzero()[:, 0], grad[0, 0].abs().sum(0).nonzero()[:, 0]
        top, left, bottom, right = viz.receptive_box(stack, y, xx)
        assert (max(top, 0), max(left, 0)) == (rows.min(), cols.min())
        assert (min(bottom, 40), min(right, 40)) == (rows.max() + 1, cols.max() + 1)
        assert bottom - top == arithmetic.receptive_field([m for m in stack])


def test_top_patches_are_the_strongest_units(net):
    torch.manual_seed(1)
    x = torch.randn(12, 3, 16, 16)
    prefix = net[:4]
    result = viz.top_patches(prefix, x, channel=2, k=5)
    with torch.no_grad():
        maps = prefix(x)[:, 2]
    per_image_best = maps.flatten(1).max(1).values
    assert torch.allclose(result.values, per_image_best.sort(descending=True).values[:5])
    size = arithmetic.receptive_field([m for m in prefix if isinstance(m, (nn.Conv2d, nn.MaxPool2d))])
    assert result.patches.shape == (5, 3, size, size)
    n, y, xx = result.positions[0].tolist()
    assert maps[n, y, xx] == result.values[0]
    top, left, _, _ = viz.receptive_box(prefix, y, xx)
    inside = result.patches[0][:, max(-top, 0):, max(-left, 0):]
    crop = x[n, :, max(top, 0):max(top, 0) + inside.shape[1], max(left, 0):max(left, 0) + inside.shape[2]]
    assert torch.equal(inside[:, :crop.shape[1], :crop.shape[2]], crop)
    with pytest.raises(ValueError, match="channel"):
        viz.top_patches(prefix, x, channel=4)
    values, positions = viz.top_activations(prefix, x, k=5)
    assert values.shape == (4, 5) and positions.shape == (4, 5, 3)
    assert torch.equal(values[2], result.values) and torch.equal(positions[2], result.positions)
    assert all(len(set(p[:, 0].tolist())) == 5 for p in positions)        # one unit per image


def test_plot_activation_grid_has_one_row_per_spatial_layer(net):
    fig = viz.plot_activation_grid(viz.activations(net, torch.randn(1, 3, 16, 16)), max_channels=3)
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(rows) == 8 and len(fig.axes) == 8 * 3      # conv, BN, ReLU, pool for each of the two stages


def test_activation_maximization_raises_the_score_and_leaves_the_weights(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    image, history = viz.activation_maximization(net, target=1, shape=(3, 16, 16), steps=60, lr=0.05)
    assert image.shape == (1, 3, 16, 16) and len(history) == 60
    assert history[-1] > history[0]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    _, channel_history = viz.activation_maximization(net, target=0, shape=(3, 16, 16), steps=30, layers=net[:3])
    assert channel_history[-1] > channel_history[0]


def test_saliency_map_is_the_largest_absolute_input_gradient(net):
    x = torch.randn(1, 3, 16, 16)
    sal = viz.saliency_map(net, x, target=2)
    xr = x.clone().requires_grad_(True)
    net(xr)[0, 2].backward()
    assert sal.shape == (16, 16)
    assert torch.allclose(sal, xr.grad[0].abs().max(0).values)
    with pytest.raises(ValueError, match="one image"):
        viz.saliency_map(net, torch.randn(2, 3, 16, 16))


def test_occlusion_map_matches_a_hand_occluded_image(net):
    x = torch.randn(1, 3, 16, 16)
    heat = viz.occlusion_map(net, x, target=3, patch=4, stride=4, fill=0.5)
    assert heat.shape == (4, 4)
    occluded = x.clone()
    occluded[:, :, 4:8, 8:12] = 0.5
    with torch.no_grad():
        expected = net(occluded).softmax(1)[0, 3]
    assert torch.allclose(heat[1, 2], expected)
    with pytest.raises(ValueError, match="patch"):
        viz.occlusion_map(net, x, target=0, patch=17)


def test_pca_2d_finds_the_directions_of_largest_variance():
    torch.manual_seed(0)
    z = torch.randn(500, 2) * torch.tensor([5.0, 2.0])
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    features = torch.cat([z, 0.01 * torch.randn(500, 4)], dim=1) @ rotation.T + 3.0
    coords, explained = viz.pca_2d(features)
    assert coords.shape == (500, 2)
    assert torch.allclose(coords.abs(), z.abs(), atol=0.2) or torch.allclose(coords.abs(), (z - z.mean(0)).abs(), atol=0.2)
    total = (features - features.mean(0)).pow(2).sum()
    assert torch.allclose(explained, coords.pow(2).sum(0) / total, atol=1e-5)
    assert explained[0] > explained[1] and explained.sum() > 0.99
    with pytest.raises(ValueError, match="N >= 3"):
        viz.pca_2d(torch.randn(2, 4))
