"""conv_layers grading: the oracle's checks pass the instructor's reference and name broken variants' mistakes
(in process, fast), and real `nbgrader autograde` gives the reference full marks, the released notebook 0 and
submissions with classic mistakes exactly the points of the functions they got right, with the right hint.

The hidden-test adapters are taken from the source notebook's test cells (the `hidden.check(...)` calls), the
reference from its solution cells (`oracle.reference`): nothing here is a second copy of either.
"""
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from solution_modules import load_solution_module

from cnncourse.testcells import wire

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "conv_layers" / "conv_layers.ipynb"
oracle = load_solution_module("conv_layers/oracle.py")
reference = load_solution_module("conv_layers/oracle_reference.py").reference  # the notebook's solution cells, executed
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


class _Recorder:
    """Stands in for cnncourse.testcells.hidden: records the function each hidden test would call."""

    def __init__(self):
        self.calls = {}

    def check(self, test, fn):
        self.calls[test] = fn


def adapters(namespace: dict) -> dict:
    """{test: the function its hidden test cell hands to hidden.check}, bound to ``namespace``."""
    recorder = _Recorder()
    for cell in nbformat.read(SOURCE, as_version=4).cells:
        for block in HIDDEN.findall(cell.source):
            code = block.replace("from cnncourse.testcells import hidden\n", "")
            exec(code, {**namespace, "hidden": recorder}, namespace)
    return recorder.calls


def verdicts(namespace: dict, seed: int = 0) -> dict:
    """{test: first failure message or None} for the functions in ``namespace`` on one student's cases,
    with the answers sent through the wire encoding as under the grader."""
    found = {}
    for test, fn in adapters(namespace).items():
        cases = oracle.TESTS[test].cases(np.random.default_rng(seed))
        messages = []
        for case, sent in zip(cases, wire.decode(wire.encode(cases))):  # the kernel gets a copy (it may change it)
            try:
                got = fn(*sent.get("args", []), **sent.get("kwargs", {}))
            except Exception as exc:
                got = exc
            messages.append(oracle.TESTS[test].check(case, wire.decode(wire.encode(got))))
        found[test] = next((m for m in messages if m), None)
    return found


def test_every_hidden_test_has_an_oracle_and_the_reference_passes_them_all():
    found = verdicts(reference(), seed=1)
    assert set(found) == set(oracle.TESTS)
    assert {test: m for test, m in found.items() if m} == {}


# grade id -> (text in the reference, replacement, hidden test that must fail, words of its hint)
VARIANTS = {
    "dx_assigned": ("conv_backward_naive", "dxp[n, :, rows, cols] += ", "dxp[n, :, rows, cols] = ",
                    "conv_backward_naive", "instead of ="),
    "pad_capped": ("pad", "(p, p), (p, p)", "(min(p, 2), min(p, 2)), (min(p, 2), min(p, 2))", "pad", None),
    "avg_not_divided": ("avg_pool_backward_naive", " / (PH * PW)", "", "avg_pool_backward_naive", "window size"),
    "bn_biased_running_var": ("spatial_batchnorm_forward", "momentum * var * m / (m - 1)", "momentum * var",
                              "spatial_batchnorm_forward", "unbiased batch variance"),
    "bn_constants": ("spatial_batchnorm_backward",
                     "dx = (g - g.mean(axis=(0, 2, 3), keepdims=True)\n"
                     "          - x_hat * (g * x_hat).mean(axis=(0, 2, 3), keepdims=True)) /",
                     "dx = g /", "spatial_batchnorm_backward", "as constants"),
    "net_no_reg_grad": ("ThreeLayerConvNet", "grads[k] = grads[k] + self.reg * self.params[k]", "pass",
                        "three_layer_convnet", "reg * W"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_oracle_names_the_mistake_of_a_broken_variant_and_nothing_else(name):
    grade_id, old, new, test, words = VARIANTS[name]
    found = verdicts(reference({grade_id: (old, new)}), seed=2)
    failing = {t for t, m in found.items() if m}
    # the convnet is built from the student's layers, so a broken layer may fail it too
    assert failing - ({"three_layer_convnet"} - {test}) == {test}, found
    assert ("Likely cause" in found[test] and words in found[test].split("Likely cause")[1]) if words else found[test]


def test_failure_messages_never_contain_expected_values():
    namespace = reference({"conv_forward_naive": ("+ b[f]", "+ 2 * b[f]")})
    message = verdicts(namespace, seed=3)["conv_forward_naive"]
    assert "entries differ" in message and "got" in message  # where and what the student returned ...
    case = oracle.TESTS["conv_forward_naive"].cases(np.random.default_rng(3))[0]
    x, w, b, p = case["args"]
    import torch
    import torch.nn.functional as F
    right = F.conv2d(*(torch.tensor(a) for a in (x, w, b)), stride=p["stride"], padding=p["padding"]).numpy()
    for value in right.ravel():  # ... but no expected value
        assert f"{value:.6g}" not in message


# student -> ({grade_id: (old, new)}, {test cell: words its failure message must contain}); every other test
# cell must pass.
SUBMISSIONS = {
    "layer_mistakes": ({"pad": VARIANTS["pad_capped"][1:3],
                        "avg_pool_backward_naive": VARIANTS["avg_not_divided"][1:3],
                        "spatial_batchnorm_forward": VARIANTS["bn_biased_running_var"][1:3],
                        "spatial_batchnorm_backward": VARIANTS["bn_constants"][1:3]},
                       {"test_pad": "hidden test pad", "test_avg_pool_backward_naive": "window size",
                        "test_spatial_batchnorm_forward": "unbiased batch variance",
                        "test_spatial_batchnorm_backward": "as constants"}),
    "overwrite": ({"conv_backward_naive": VARIANTS["dx_assigned"][1:3]},
                  {"test_conv_backward_naive": "instead of ="}),  # the net needs no dx of its first layer
    "no_reg_gradient": ({"ThreeLayerConvNet": VARIANTS["net_no_reg_grad"][1:3]},
                        {"test_three_layer_convnet": "reg * W"}),
}


def _submission(tmp_path: Path, name: str, edits: dict) -> Path:
    nb = nbformat.read(SOURCE, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in edits:
            old, new = edits[grade_id]
            assert cell.source.count(old) == 1, f"the reference {grade_id} no longer contains {old!r}"
            cell.source = cell.source.replace(old, new)
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _failures(notebook: Path) -> dict[str, str]:
    """{grade id of a test cell: its error message} in an autograded notebook."""
    failed = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if meta.get("grade") and errors:
            failed[meta["grade_id"]] = "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
    return failed


@pytest.mark.slow
def test_autograde_gives_each_mistake_its_partial_credit_and_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCOURSE_SECRET", "conv-layers-grading-test")
    sys.path.insert(0, str(ROOT / "tests" / "grader"))
    from helpers import autograde

    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nbformat.read(SOURCE, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert points["test_conv_backward_naive"] > points["test_conv_forward_naive"]  # backward passes weigh more
    submissions = {name: _submission(tmp_path, name, edits) for name, (edits, _) in SUBMISSIONS.items()}
    result = autograde(ROOT, "conv_layers", submissions, workdir=tmp_path / "grading")
    maximum = sum(points.values())
    for name, (_, expected) in SUBMISSIONS.items():
        graded = tmp_path / "grading" / "course" / "autograded" / name / "conv_layers" / "conv_layers.ipynb"
        failed = _failures(graded)
        assert set(failed) == set(expected), (name, failed)
        for test, words in expected.items():
            assert words in failed[test], f"{name}: {test} said\n{failed[test]}"
        assert result[name] == (maximum - sum(points[t] for t in failed), maximum), (name, result[name], failed)
