"""cnncourse.widgets: summaries and drawings for valid and invalid settings, and explorers that update
without a browser and never raise for a bad slider combination."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cnncourse import widgets  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("n,k,s,p,d", [(7, 3, 1, 0, 1), (7, 3, 2, 0, 1), (32, 5, 1, 2, 1), (227, 11, 4, 0, 1),
                                       (9, 3, 1, 0, 2), (9, 3, 2, 1, 1)])
def test_conv_summary_matches_torch(n, k, s, p, d):
    summary = widgets.conv_summary(n, k, s, p, d)
    out = torch.nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, n, n)).shape[-1]
    assert summary.valid and summary.out == out
    assert summary.text.startswith("Output size") and summary.text.splitlines()[0].endswith(f"= {out}")


def test_conv_summary_explains_7_3_stride_3():
    summary = widgets.conv_summary(7, 3, stride=3)
    assert not summary.valid and summary.out is None
    assert "Output size" in summary.text and "2.333" in summary.text and "does not fit" in summary.text
    assert "not a whole number" in summary.text and "padding 1" in summary.text
    assert "Traceback" not in summary.text
    assert "#b71c1c" in summary.to_html()


def test_conv_summary_kernel_larger_than_input():
    summary = widgets.conv_summary(3, 5)
    assert not summary.valid and "larger than the padded input" in summary.text


def test_pool_summary():
    assert widgets.pool_summary(224, 2).out == 112
    bad = widgets.pool_summary(5, 2)
    assert not bad.valid and "Try stride" in bad.text


@pytest.mark.parametrize("mode", widgets.PADDING_MODES)
def test_pad_image_matches_conv2d_padding_mode(mode):
    img = widgets.demo_image(6)
    conv = torch.nn.Conv2d(1, 1, 1, padding=2, padding_mode=mode, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        expected = conv(torch.as_tensor(img)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(widgets.pad_image(img, 2, mode), expected)
    assert widgets.padding_summary(6, 2, mode).out == 10


def test_padding_summary_invalid():
    assert not widgets.padding_summary(4, 4, "reflect").valid
    assert not widgets.padding_summary(4, 1, "mirror").valid
    with pytest.raises(ValueError, match="reflect padding needs pad < image size"):
        widgets.pad_image(np.zeros((4, 4)), 4, "reflect")


def test_pool_matches_torch():
    x = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(widgets.pool(x, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(widgets.pool(x, 2, mode="avg"), [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(widgets.pool(x, 2, mode="sum"), 4 * widgets.pool(x, 2, mode="avg"))
    with pytest.raises(ValueError, match="mode"):
        widgets.pool(x, 2, mode="min")


def test_draw_functions_valid_and_invalid():
    ok = widgets.draw_conv(7, 3, 2, step=3)
    assert [a.get_title() for a in ok.axes] == ["input", "output"]
    bad = widgets.draw_conv(7, 3, 3)
    assert [a.get_title() for a in bad.axes] == ["input"] and "does not fit" in bad._suptitle.get_text()
    x = np.random.default_rng(0).integers(0, 10, (6, 6))
    assert len(widgets.draw_pool(x, 2, 2, "max", step=5).axes) == 2
    assert len(widgets.draw_pool(x, 4, 3).axes) == 1  # invalid: the input alone, with the explanation
    assert len(widgets.draw_padding(widgets.demo_image(), 2, "circular").axes) == 2
    fig = widgets.draw_padding(widgets.demo_image(), 20, "reflect")
    assert "pad < image size" in fig.axes[1].texts[0].get_text()


def test_conv_explorer_updates_and_explains_invalid():
    ex = widgets.conv_explorer()
    assert set(ex.controls) == {"n", "kernel", "stride", "padding", "dilation", "step"}
    assert "Output size" in ex.summary.value and "= 5" in ex.summary.value
    assert ex.controls["step"].max == 24
    ex.controls["stride"].value = 3
    assert "Output size" in ex.summary.value and "does not fit" in ex.summary.value
    assert ex.figure is not None
    ex.controls["stride"].value = 2
    assert ex.controls["step"].max == 8 and "= 3" in ex.summary.value
    ex.controls["kernel"].value = 7
    ex.controls["n"].value = 3  # kernel larger than the input: still no exception
    assert "larger than the padded input" in ex.summary.value


def test_pool_and_padding_explorers():
    ex = widgets.pool_explorer(size=6)
    assert "Output size" in ex.summary.value and ex.data.shape == (6, 6)
    ex.controls["kernel"].value = 4
    ex.controls["stride"].value = 3
    assert "does not fit" in ex.summary.value
    ex.controls["mode"].value = "avg"
    pad = widgets.padding_explorer()
    pad.controls["mode"].value = "reflect"
    pad.controls["pad"].value = 11
    assert "reflect padding needs" in pad.summary.value
    with pytest.raises(ValueError, match="2-D"):
        widgets.padding_explorer(np.zeros((3, 4, 4)))
