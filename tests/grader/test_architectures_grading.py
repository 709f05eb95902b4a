"""cnn_architectures through real ``nbgrader autograde``: the reference earns full marks within the time budget,
the released notebook earns 0, and typical mistakes earn partial credit with the right hint -- from the hidden
tests (checked in the grader, which alone knows the expected outputs and the design task's labels) and from the
visible ones."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from helpers import autograde_notebooks, autograded, cell_index, with_answers

from cnncourse.grader.hidden import FAILED

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "cnn_architectures"
SOURCE = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASED = ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
BUDGET_S = 60  # issue 18: the whole autograde of one reference submission
SECRET = "architectures-engineer-fixed-secret"  # fixed per-student inputs: the same verdicts on every run

# The basic block without its final ReLU passes the visible identity check (its inputs are non-negative) but not
# the grader's random weights and inputs.
NO_FINAL_RELU = '''class ResidualBlockA(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return out + shortcut_a(x, self.out_channels, self.stride)
'''
# The original ResNet-50's stride placement: caught by the visible test.
STRIDE_ON_1X1 = '''class PreActBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, expansion=4):
        super().__init__()
        width = out_channels // expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        a = torch.relu(self.bn1(x))
        out = self.conv3(torch.relu(self.bn3(self.conv2(torch.relu(self.bn2(self.conv1(a)))))))
        return out + (x if self.shortcut is None else self.shortcut(a))
'''
# A plain stack without batch norm, within the budgets: it trains too slowly to reach the accuracy.
PLAIN_DESIGN = '''def shapes_net(num_classes):
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, num_classes))
'''
MISTAKES = {"residual_block_a": NO_FINAL_RELU, "preact_bottleneck": STRIDE_ON_1X1, "shapes_net": PLAIN_DESIGN}


def grade(tmp: Path, submissions: dict, monkeypatch) -> tuple[Path, dict, float]:
    monkeypatch.setenv("CNNCOURSE_SECRET", SECRET)
    return autograde_notebooks(ROOT, ASSIGNMENT, tmp, submissions)


def error_of(nb, grade_id):
    (error,) = [o for o in nb.cells[cell_index(nb, grade_id)].outputs if o.output_type == "error"]
    return error


@pytest.mark.slow
def test_reference_full_marks_within_budget(tmp_path, monkeypatch):
    _, marks, elapsed = grade(tmp_path, {"reference": nbformat.read(SOURCE, as_version=4)}, monkeypatch)
    assert marks["reference"][0] == marks["reference"][1] == 25
    # The budget holds on this 2-core machine when it is not shared; under a load of L runnable processes per
    # core everything takes about L times as long.
    budget = BUDGET_S * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert elapsed < budget, f"autograding one reference submission took {elapsed:.0f} s (budget {budget:.0f} s)"


@pytest.mark.slow
def test_released_zero_and_mistakes_partial_with_hints(tmp_path, monkeypatch):
    root, marks, _ = grade(tmp_path, {"released": nbformat.read(RELEASED, as_version=4),
                                      "mistakes": with_answers(SOURCE, MISTAKES)}, monkeypatch)
    assert marks["released"] == (0.0, 25.0)
    nb = autograded(root, ASSIGNMENT, "mistakes")
    lost = sum(nb.cells[cell_index(nb, f"test_{g}")].metadata["nbgrader"]["points"] for g in MISTAKES)
    assert marks["mistakes"] == (25.0 - lost, 25.0) and 25.0 - lost > 0
    relu = error_of(nb, "test_residual_block_a")
    assert relu.ename == FAILED and "Likely cause: the basic block ends with a ReLU after the sum" in relu.evalue
    stride = error_of(nb, "test_preact_bottleneck")
    assert stride.ename == "AssertionError" and "the stride belongs to the 3x3 conv2" in stride.evalue
    design = error_of(nb, "test_shapes_net")
    assert design.ename == FAILED and "validation accuracy" in design.evalue and "below the required" in design.evalue
    assert "Likely cause: the design learns too slowly" in design.evalue
