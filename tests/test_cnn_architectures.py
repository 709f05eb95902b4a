"""The cnn_architectures assignment without nbgrader: its oracle accepts right answers and names the typical
mistakes, the notebook states the rules the grader applies, and no graded answer ships in ``cnncourse.models``.
(Real grading: tests/grader/test_architectures_grading.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from solution_modules import load_solution_module

from cnncourse import models

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "solutions" / "cnn_architectures"


@pytest.fixture(scope="module")
def oracle():
    return load_solution_module("cnn_architectures/oracle.py")


def cells(grade_id: str) -> str:
    nb = json.loads((FOLDER / "cnn_architectures.ipynb").read_text())
    (source,) = ["".join(c["source"]) for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return source


def test_notebook_states_the_graders_design_settings(oracle):
    stated: dict = {}
    exec(cells("design_rules"), stated)
    assert stated["DESIGN"] == oracle.DESIGN
    for name in ("PARAM_BUDGET", "MAC_BUDGET", "DESIGN_EPOCHS", "DESIGN_LR", "N_TRAIN", "ACCURACY"):
        assert stated[name] == getattr(oracle, name), name
    assert len(cells("setup").splitlines()) <= 15


def test_the_own_code_rule_is_checked_by_a_visible_test(oracle):
    assert 'check_notebook("cnn_architectures.ipynb", OwnCode(forbidden=("cnncourse", "data", "train")))' in \
        cells("test_shortcut_a")
    assert oracle.RULES.forbidden == ("cnncourse", "data", "train")


def test_no_graded_answer_ships_in_the_package():
    for name in ("shortcut_a", "ResidualBlockA", "PreActBlock", "PreActBottleneck", "convolutionalize", "shapes_net"):
        assert not hasattr(models, name), name
    # the package's bottleneck is post-activation: it is not the answer to part 4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 64 * 4
                   for m in [models.Bottleneck(64 * 4, 64).bn1])


def _case(oracle, name, index=0, seed=0):
    return oracle.TESTS[name].cases(np.random.default_rng(seed))[index]


def test_shortcut_oracle_accepts_the_answer_and_names_the_mistakes(oracle):
    case = _case(oracle, "shortcut_a")
    x, out_channels, stride, dout = case["args"]
    xt = torch.tensor(x, requires_grad=True)
    out = oracle.shortcut_a(xt, out_channels, stride)
    (out * torch.tensor(dout)).sum().backward()
    right = (out.detach().numpy(), xt.grad.numpy())
    assert oracle.TESTS["shortcut_a"].check(case, right) is None
    front = oracle.shortcut_a(torch.tensor(x), out_channels, stride, "before").numpy()
    message = oracle.TESTS["shortcut_a"].check(case, (front, right[1]))
    assert "Likely cause: the zero channels go AFTER" in message
    assert "expected" not in message.replace("|expected|", ""), "the message must not show expected values"
    shifted = oracle.shortcut_a(torch.tensor(x), out_channels, stride, offset=1).numpy()
    assert "start at 0" in oracle.TESTS["shortcut_a"].check(case, (shifted, right[1]))


@pytest.mark.parametrize("kind, mistake, hint", [
    ("residual_block_a", "no_final_relu", "the basic block ends with a ReLU after the sum"),
    ("preact_block", "final_relu", "a pre-activation block has no ReLU after the sum"),
    ("preact_block", "project_x", "the projection shortcut reads the pre-activated input"),
    ("preact_bottleneck", "stride_on_1x1", "the stride belongs to the 3x3 conv2"),
])
def test_block_oracles_name_the_mistakes(oracle, kind, mistake, hint):
    fn = {"residual_block_a": oracle.residual_block_a, "preact_block": oracle.preact_block,
          "preact_bottleneck": oracle.preact_bottleneck}[kind]
    case = _case(oracle, kind)  # the first case of every block changes the shape (stride 2, a projection)
    (cin, cout, stride), state, x, dout = case["args"]
    s = {k: torch.tensor(v, dtype=torch.float64) for k, v in state.items()}
    params = sum(int(np.size(v)) for k, v in state.items() if not k.startswith("bn") or k.endswith(("weight", "bias")))

    def answer(variant):
        got = {"params": params, "modules": ["torch.nn.modules.conv"]}
        for mode in ("eval", "train"):
            xt = torch.tensor(x, requires_grad=True)
            y = fn(s, xt, cin, cout, stride, mode == "train", variant)
            (y * torch.tensor(dout)).sum().backward()
            got[mode] = (y.detach().numpy(), xt.grad.numpy())
        return got

    assert oracle.TESTS[kind].check(case, answer("")) is None
    assert f"Likely cause: {hint}" in oracle.TESTS[kind].check(case, answer(mistake))
    borrowed = dict(answer(""), modules=["cnncourse.models"])
    assert "torch.nn layers" in oracle.TESTS[kind].check(case, borrowed)


def test_design_oracle_scores_predictions_it_alone_can_label(oracle):
    case = _case(oracle, "shapes_net")
    seed, n_train, epochs, lr, kwargs, images = case["args"]
    assert (n_train, epochs, lr, kwargs) == (oracle.N_TRAIN, oracle.DESIGN_EPOCHS, oracle.DESIGN_LR, oracle.DESIGN)
    assert images.shape == (oracle.N_VAL, 3, 32, 32)
    assert not any(isinstance(a, np.ndarray) and a.shape == (oracle.N_VAL,) for a in case["args"]), "labels leak"
    labels = oracle._VAL_LABELS[oracle._key(images)]
    assert oracle.TESTS["shapes_net"].check(case, (30_000, 1_000_000, labels.copy())) is None
    wrong = (labels + 1) % len(oracle.DESIGN["classes"])
    assert "below the required" in oracle.TESTS["shapes_net"].check(case, (30_000, 1_000_000, wrong))
    assert "over the budget" in oracle.TESTS["shapes_net"].check(case, (oracle.PARAM_BUDGET + 1, 1, labels))
    other = _case(oracle, "shapes_net", seed=1)
    assert other["args"][0] != seed and not np.array_equal(other["args"][-1], images)
