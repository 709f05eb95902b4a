"""cnncourse.plotting: every function returns a Figure with the expected axes, and bad input is
reported with a ValueError naming what was wrong."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnncourse import plotting  # noqa: E402
from cnncourse.arithmetic import layer_table  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_timeline_has_every_milestone():
    fig = plotting.plot_timeline(highlight=["AlexNet"])
    assert isinstance(fig, Figure)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for m in plotting.MILESTONES:
        assert f"{m.year}  {m.name}" in texts
    years = {m.year for m in plotting.MILESTONES}
    assert {1957, 1960, 1980, 1986, 1998, 2006, 2012, 2014, 2015} <= years


def test_timeline_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_timeline([])


def test_images_grid_and_titles():
    fig = plotting.plot_images(np.random.rand(5, 8, 8), titles=list("abcde"), ncols=3)
    axes = visible_axes(fig)
    assert len(axes) == 5 and [a.get_title() for a in axes] == list("abcde")
    fig = plotting.plot_images(torch.rand(2, 3, 8, 8))  # RGB tensors
    assert len(visible_axes(fig)) == 2
    with pytest.raises(ValueError, match="titles"):
        plotting.plot_images(np.zeros((2, 4, 4)), titles=["one"])


def test_feature_maps_one_panel_per_channel():
    fig = plotting.plot_feature_maps(torch.rand(1, 6, 10, 10))
    assert [a.get_title() for a in visible_axes(fig)] == [f"ch {c}" for c in range(6)]
    assert len(visible_axes(plotting.plot_feature_maps(np.random.rand(40, 4, 4), max_maps=16))) == 16
    with pytest.raises(ValueError, match="one image"):
        plotting.plot_feature_maps(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        plotting.plot_feature_maps(np.zeros((4, 4)))


def test_filters_rgb_and_grey():
    assert len(visible_axes(plotting.plot_filters(torch.randn(10, 3, 5, 5)))) == 10
    fig = plotting.plot_filters(np.random.randn(4, 16, 3, 3))
    assert len(visible_axes(fig)) == 4
    with pytest.raises(ValueError, match="F, C, kh, kw"):
        plotting.plot_filters(np.zeros((3, 3, 3)))


def test_confusion_matrix_counts_and_labels():
    cm = np.array([[5, 1], [2, 7]])
    fig = plotting.plot_confusion_matrix(cm, classes=["cat", "dog"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "5", "7"]
    fig = plotting.plot_confusion_matrix(cm, normalize=True)
    assert "0.83" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="square"):
        plotting.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="names"):
        plotting.plot_confusion_matrix(cm, classes=["a"])


def test_conv_diagram_valid_has_input_and_output():
    fig = plotting.plot_conv_diagram(5, 3, stride=2, padding=1, step=4)
    assert [a.get_title() for a in fig.axes] == ["input", "output"]
    assert fig.axes[1].get_xlabel() == "3x3 output"


def test_conv_diagram_invalid_draws_input_only_with_hatched_border():
    fig = plotting.plot_conv_diagram(7, 3, stride=3)
    assert [a.get_title() for a in fig.axes] == ["input"]
    assert any(p.get_hatch() for p in fig.axes[0].patches)


def test_conv_diagram_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        plotting.plot_conv_diagram(7, 3, stride=0)


def test_grid_values_writes_values():
    fig = plotting.plot_grid_values([np.arange(4).reshape(2, 2), np.ones((1, 1))], ["a", "b"],
                                    highlight=[np.eye(2, dtype=bool), None])
    assert [a.get_title() for a in fig.axes] == ["a", "b"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_grid_values([np.zeros(3)])


def test_bar_table_from_layer_table():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    fig = plotting.plot_bar_table(layer_table(model, (3, 8, 8)))
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "3"]  # ReLU and Flatten skipped
    assert fig.axes[0].yaxis_inverted()  # first layer on top
    assert [p.get_facecolor()[:3] for p in fig.axes[0].patches] == [matplotlib.colors.to_rgb("tab:blue"),
                                                                     matplotlib.colors.to_rgb("tab:orange")]
    assert fig.axes[1].get_xlabel() == "multiply-accumulates (MACs)"
    fig = plotting.plot_bar_table({"conv": {"params": 10}, "fc": {"params": 30}}, columns=["params"], log=True)
    assert fig.axes[0].get_xscale() == "log"


def test_learning_curves_from_dict():
    fig = plotting.plot_learning_curves({"train_loss": [1, 0.5], "val_loss": [1.1, 0.7], "train_acc": [0.5, 0.8]})
    assert [len(a.lines) for a in fig.axes] == [2, 1]


def test_plot_curves_draws_one_line_per_curve():
    fig = plotting.plot_curves({"a": [3, 2, 1], "b": torch.tensor([1.0, 2.0])}, xlabel="step", ylabel="loss")
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 2]
    with pytest.raises(ValueError, match="curves is empty"):
        plotting.plot_curves({})


def test_history_comparison_panels_and_runs():
    runs = {"plain": {"train_loss": [1, 0.5], "val_loss": [1.2, 0.8], "train_acc": [0.5, 0.7], "val_acc": [0.4, 0.6]},
            "bn": {"train_loss": [0.9, 0.3], "val_loss": [1.0, 0.5]}}
    fig = plotting.plot_history_comparison(runs)
    assert len(visible_axes(fig)) == 2
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 2   # loss: 2 runs x 2 splits; acc: 1 run
    with pytest.raises(ValueError, match="histories is empty"):
        plotting.plot_history_comparison({})


@pytest.mark.parametrize("layers", [[(3, 1), (3, 1)], [(3, 1), (3, 2), (3, 1)], [(3, 1, 1), (3, 1, 2), (3, 1, 4)]])
def test_receptive_field_figure_fills_the_field(layers):
    from cnncourse.arithmetic import receptive_field

    fig = plotting.plot_receptive_field(layers)
    assert f"{receptive_field(layers)} input pixels" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="too small"):
        plotting.plot_receptive_field(layers, n_input=2)


def test_applications_three_panels_and_mask_check():
    img, mask = np.zeros((16, 16)), np.zeros((16, 16), int)
    img[2:6, 2:6], mask[2:6, 2:6] = 1, 1
    fig = plotting.plot_applications(img, "square", [("square", 2, 2, 5, 5)], mask)
    assert [ax.get_title() for ax in fig.axes] == ["classification", "detection", "segmentation"]
    assert len(fig.axes[1].patches) == 1
    with pytest.raises(ValueError, match="mask has shape"):
        plotting.plot_applications(img, "square", [], mask[:8])


def test_bar_table_charts_pooling_operations():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2))
    fig = plotting.plot_bar_table(layer_table(model, (1, 8, 8)), columns=("macs", "pool_ops"))
    assert fig.axes[1].get_xlabel() == "pooling operations"
