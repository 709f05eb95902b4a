"""transfer_learning through real ``nbgrader autograde``: the reference earns full marks within the time budget,
the released notebook earns 0, and typical mistakes earn partial credit with the right hint. Part 4 is scored
in the grader on validation labels that never enter the kernel: a strategy whose head barely learns ("doing
nothing") and training from random weights (no transfer) both stay below the threshold."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from helpers import autograde_notebooks, autograded, cell_index, with_answers

from cnncourse.grader.hidden import FAILED

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "transfer_learning"
SOURCE = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASED = ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
BUDGET_S = 60  # issue 18: the whole autograde of one reference submission
SECRET = "architectures-engineer-fixed-secret"  # fixed per-student inputs: the same verdicts on every run
FULL = 17.0

# requires_grad_(False) only: BatchNorm's running statistics still move in training mode (caught visibly).
FREEZE_PARAMETERS_ONLY = '''def freeze_backbone(model):
    _, head = find_head(model)
    keep = {id(p) for p in head.parameters()}
    frozen = 0
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen
'''
# "Doing nothing": the head is in the optimiser, at a learning rate at which 10 steps change nothing.
NOTHING = '''def configure(model):
    freeze_backbone(model)
    return torch.optim.Adam(model[-1].parameters(), lr=1e-5)
'''
# No transfer: every layer re-initialised and trained from scratch (lecture 9's baseline).
SCRATCH = '''def configure(model):
    for _, layer in model.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            layer.reset_parameters()
    return torch.optim.Adam(model.parameters(), lr=3e-3)
'''
# Lecture 9's fine-tuning: everything trains, the head ten times faster than the backbone.
FINETUNE = '''def configure(model):
    head = model[-1].parameters()
    backbone = [p for name, p in model.named_parameters() if not name.startswith("10.")]
    return torch.optim.Adam([{"params": backbone, "lr": 1e-3}, {"params": head, "lr": 1e-2}])
'''


def grade(tmp: Path, submissions: dict, monkeypatch) -> tuple[Path, dict, float]:
    monkeypatch.setenv("CNNCOURSE_SECRET", SECRET)
    return autograde_notebooks(ROOT, ASSIGNMENT, tmp, submissions)


def error_of(root: Path, student: str, grade_id: str):
    nb = autograded(root, ASSIGNMENT, student)
    (error,) = [o for o in nb.cells[cell_index(nb, grade_id)].outputs if o.output_type == "error"]
    return error


@pytest.mark.slow
def test_reference_full_marks_within_budget(tmp_path, monkeypatch):
    _, marks, elapsed = grade(tmp_path, {"reference": nbformat.read(SOURCE, as_version=4)}, monkeypatch)
    assert marks["reference"] == (FULL, FULL)
    # The budget holds on this 2-core machine when it is not shared; under a load of L runnable processes per
    # core everything takes about L times as long.
    budget = BUDGET_S * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert elapsed < budget, f"autograding one reference submission took {elapsed:.0f} s (budget {budget:.0f} s)"


@pytest.mark.slow
def test_released_zero_mistakes_partial_and_strategies_judged_by_accuracy(tmp_path, monkeypatch):
    root, marks, _ = grade(tmp_path, {
        "released": nbformat.read(RELEASED, as_version=4),
        "mistakes": with_answers(SOURCE, {"freeze_backbone": FREEZE_PARAMETERS_ONLY, "configure": NOTHING}),
        "scratch": with_answers(SOURCE, {"configure": SCRATCH}),
        "finetune": with_answers(SOURCE, {"configure": FINETUNE}),
    }, monkeypatch)
    assert marks["released"] == (0.0, FULL)
    assert marks["mistakes"] == (FULL - 4 - 8, FULL)
    bn = error_of(root, "mistakes", "test_freeze_backbone")
    assert bn.ename == "AssertionError" and "keep the backbone's BatchNorm layers in eval mode" in bn.evalue
    nothing = error_of(root, "mistakes", "test_configure")
    assert nothing.ename == FAILED and "Likely cause: the new head barely learns" in nothing.evalue
    assert marks["scratch"] == (FULL - 8, FULL)
    scratch = error_of(root, "scratch", "test_configure")
    assert "below the required" in scratch.evalue and "the pretrained features are not used well" in scratch.evalue
    assert marks["finetune"] == (FULL, FULL), "lecture 9's fine-tuning is an honest strategy: it must pass"
