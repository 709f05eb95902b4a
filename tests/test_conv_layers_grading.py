"""conv_layers through real `nbgrader autograde`: submissions with one classic mistake in the convolution forward
pass lose exactly that function's points, and the visible test names the mistake; a submission that hands
the backward pass to the reference in cnncourse.layers passes the visible tests but loses its points.

(The reference solution scoring full marks and the released notebook scoring 0 are tested for every
assignment in tests/test_assignments.py.)"""
from pathlib import Path

import nbformat
import pytest

from nbgrader_helpers import autograde

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "conv_layers" / "conv_layers.ipynb"
WINDOW = "window = xp[n, :, i * S:i * S + HH, j * S:j * S + WW]"
PRODUCT = "out[n, f, i, j] = np.sum(window * w[f]) + b[f]"

# name -> (text in the reference conv_forward_naive, replacement, words the visible test must say)
MISTAKES = {
    # the window steps by S - 1 pixels instead of S (stride 1 -> every window at the top-left corner)
    "stride_off_by_one": (WINDOW, "window = xp[n, :, i * (S - 1):i * (S - 1) + HH, j * (S - 1):j * (S - 1) + WW]",
                          "off by one in the stride"),
    # a textbook convolution (kernel rotated by 180 degrees) instead of the cross-correlation CNNs compute
    "kernel_flipped": (PRODUCT, "out[n, f, i, j] = np.sum(window * w[f, :, ::-1, ::-1]) + b[f]",
                       "true convolution, with the kernel rotated by 180 degrees"),
}


def _points(nb) -> dict[str, float]:
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def _broken(tmp_path: Path, name: str, old: str, new: str, grade_id: str = "conv_forward_naive") -> Path:
    nb = nbformat.read(SOURCE, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert cell.source.count(old) == 1, f"the reference {grade_id} no longer contains {old!r}"
    cell.source = cell.source.replace(old, new)
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _error_text(notebook: Path, grade_id: str) -> str:
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(o.get("evalue", "") for o in cell.outputs if o.output_type == "error")


@pytest.mark.slow
def test_broken_conv_forward_loses_exactly_its_points(tmp_path):
    points = _points(nbformat.read(SOURCE, as_version=4))
    assert points["test_conv_forward_naive"] < points["test_conv_backward_naive"]  # backward passes weigh more
    submissions = {name: _broken(tmp_path, name, old, new) for name, (old, new, _) in MISTAKES.items()}
    submissions["delegates_backward"] = _broken(  # right numbers, but computed by the oracle's own module
        tmp_path, "delegates_backward", "    ### BEGIN SOLUTION\n",
        "    from cnncourse.layers import conv_backward_naive as reference\n    return reference(dout, cache)\n",
        grade_id="conv_backward_naive")
    result = autograde(ROOT, "conv_layers", submissions, workdir=tmp_path / "grading")
    maximum = sum(points.values())
    assert result["delegates_backward"] == (maximum - points["test_conv_backward_naive"], maximum)
    for name, (_, _, cause) in MISTAKES.items():
        assert result[name] == (maximum - points["test_conv_forward_naive"], maximum), (name, result[name])
        graded = tmp_path / "grading" / "course" / "autograded" / name / "conv_layers" / "conv_layers.ipynb"
        message = _error_text(graded, "test_conv_forward_naive")
        assert "Likely cause:" in message and cause in message.split("Likely cause:")[1], f"{name}: the visible test said\n{message}"
        assert _error_text(graded, "test_conv_backward_naive") == ""  # backward is graded on its own
