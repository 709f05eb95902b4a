"""Hidden tests of ``transfer_learning`` (instructor only: never released, never in the student's kernel).

Parts 1-3 run the student's functions on architectures from ``cnncourse.models`` that the grader picks and seeds;
the expected head names, counts and untouched weights are computed here from the same seeded models. Part 4
trains with the student's strategy in the kernel and is scored here on validation images whose labels never
enter the kernel. The thresholds were measured over 60 draws per strategy (see the README's transfer_learning
section).
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from cnncourse import models, pretrained
from cnncourse.grader.cases import Test
from cnncourse.testcells.compare import describe
from cnncourse.testcells.owncode import OwnCode

# The notebook's strategy_rules cell states the same values (tests/test_transfer.py checks that they agree).
EPOCHS, LABELS_PER_DIGIT, DRAWS, ACCURACY = 10, 1, 20, 0.78
RULES = OwnCode(forbidden=("cnncourse", "data", "train", "models", "pretrained", "sklearn"))
_VAL_LABELS: dict[str, np.ndarray] = {}


def _arch(rng: np.random.Generator, kind: str) -> tuple[str, dict, tuple[int, ...]]:
    """(constructor name, kwargs, input shape of one image) of a random small model of ``kind``."""
    k = int(rng.integers(2, 9))
    if kind == "small_vgg":
        return kind, {"num_classes": k, "in_channels": 1, "widths": (int(rng.integers(2, 6)), int(rng.integers(4, 9)))}, (1, 16, 16)
    if kind == "resnet20":
        return kind, {"num_classes": k, "in_channels": 1, "widths": (4, 4, 8)}, (1, 16, 16)
    if kind == "lenet5":
        return kind, {"num_classes": k, "in_channels": 1, "input_size": 8}, (1, 8, 8)
    if kind == "small_cnn":
        return kind, {"num_classes": k, "in_channels": 1, "widths": (int(rng.integers(2, 6)), int(rng.integers(4, 9)))}, (1, 8, 8)
    return "mlp", {"in_features": 64, "num_classes": k, "hidden": [int(rng.integers(4, 17)), int(rng.integers(4, 17))]}, (64,)


_KINDS = ("small_vgg", "resnet20", "lenet5", "small_cnn", "mlp")


def _model(arch: str, kwargs: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return getattr(models, arch)(**kwargs)


def _head_name(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


def _raised(name: str, got: Any) -> str | None:
    return f"{name}: your code raised {got}" if type(got).__name__ == "RaisedError" else None


def _title(arch: str, kwargs: dict) -> str:
    return f"{arch}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


# ---------------------------------------------------------------------------------------------- find_head
def _find_cases(rng: np.random.Generator) -> list[dict]:
    out = []
    for kind in _KINDS:
        arch, kwargs, _ = _arch(rng, kind)
        out.append({"args": [arch, kwargs, int(rng.integers(2**31))], "kwargs": {}})
    return out


def _find_check(case: dict, got: Any) -> str | None:
    arch, kwargs, seed = case["args"]
    name = f"find_head({_title(arch, kwargs)})"
    if (problem := _raised(name, got)) is not None:
        return problem
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], str)):
        return f"{name}: expected a (name, module) pair, got {describe(got)}"
    if got[0] != _head_name(_model(arch, kwargs, seed)):
        return (f"{name} returned the name {got[0]!r}, which is not the head.\nLikely cause: the head is the LAST "
                "nn.Linear that model.named_modules() yields, named as named_modules() names it")
    if got[1] is not True:
        return f"{name}: the module returned is not the model's own layer {got[0]!r} (return the module itself)"
    return None


# ------------------------------------------------------------------------------------------- replace_head
def _replace_cases(rng: np.random.Generator) -> list[dict]:
    out = []
    for kind in _KINDS:
        arch, kwargs, shape = _arch(rng, kind)
        out.append({"args": [arch, kwargs, int(rng.integers(2**31)), int(rng.integers(2, 7)),
                             rng.standard_normal((3, *shape))], "kwargs": {}})
    return out


def _replace_check(case: dict, got: Any) -> str | None:
    arch, kwargs, seed, num_classes, x = case["args"]
    name = f"replace_head({_title(arch, kwargs)}, {num_classes})"
    if (problem := _raised(name, got)) is not None:
        return problem
    if not (isinstance(got, tuple) and len(got) == 5):
        return f"{name}: the test could not run your function (got {describe(got)})"
    kind, where, state, shape, trainable = got
    original = _model(arch, kwargs, seed)
    head = _head_name(original)
    old = dict(original.named_modules())[head]
    if kind != "Linear":
        return f"{name}: returned {kind}, expected the new nn.Linear layer"
    if where != [head]:
        return (f"{name}: the returned layer sits at {where or 'no place'} in the model, not where the head "
                f"{head!r} was.\nLikely cause: replace the child of the head's parent module (setattr), do not add a "
                "new attribute")
    if shape != (int(x.shape[0]), num_classes):
        return f"{name}: the model's output has shape {shape} for {x.shape[0]} inputs, not (N, num_classes)"
    if not trainable:
        return f"{name}: the new head must be trainable"
    for key, value in original.state_dict().items():
        if not value.is_floating_point():
            continue
        if key.startswith(head + "."):
            expected_shape = (num_classes, old.in_features) if key.endswith("weight") else (num_classes,)
            if tuple(np.shape(state.get(key))) != expected_shape:
                return f"{name}: the new head's {key.rsplit('.', 1)[1]} has the wrong shape"
        elif key not in state or not np.array_equal(state[key], value.numpy()):
            return f"{name}: the backbone entry {key} changed or disappeared; only the head may change"
    return None


# ---------------------------------------------------------------------------------------- freeze_backbone
def _freeze_cases(rng: np.random.Generator) -> list[dict]:
    out = []
    for kind in ("small_cnn", "resnet20", "small_vgg", "mlp"):
        arch, kwargs, shape = _arch(rng, kind)
        out.append({"args": [arch, kwargs, int(rng.integers(2**31)), 2.0 * rng.standard_normal((4, *shape)) + 1.0],
                    "kwargs": {}})
    return out


def _freeze_check(case: dict, got: Any) -> str | None:
    arch, kwargs, seed, _ = case["args"]
    name = f"freeze_backbone({_title(arch, kwargs)})"
    if (problem := _raised(name, got)) is not None:
        return problem
    if not (isinstance(got, tuple) and len(got) == 3):
        return f"{name}: the test could not run your function (got {describe(got)})"
    frozen, trainable, buffers = got
    model = _model(arch, kwargs, seed)
    head = _head_name(model)
    want_trainable = [n for n, _ in model.named_parameters() if n.startswith(head + ".")]
    if trainable != want_trainable:
        hint = ("the head must stay trainable" if not trainable else
                "freeze every parameter outside the head, BatchNorm's weight and bias included")
        return f"{name}: after freezing, the trainable parameters are {trainable}.\nLikely cause: {hint}"
    want_frozen = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(head + "."))
    if type(frozen) is not int or frozen != want_frozen:
        return (f"{name} returned {frozen!r}, which is not the number of frozen parameter values.\nLikely cause: "
                "sum p.numel() over the frozen parameters (values, not tensors; the head not included)")
    for key, value in model.named_buffers():
        if value.is_floating_point() and not np.array_equal(buffers.get(key), value.numpy()):
            return (f"{name}: after model.train() and one forward pass the buffer {key} changed.\nLikely cause: keep "
                    "the backbone's BatchNorm layers in eval mode even after model.train() (lecture 9)")
    return None


# ---------------------------------------------------------------------------------------------- configure
def _key(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()


def _configure_cases(rng: np.random.Generator) -> list[dict]:
    _, val = pretrained.target_task(labels_per_class=LABELS_PER_DIGIT, seed=0)
    order = rng.permutation(len(val))
    images = val.images.numpy()[order]
    _VAL_LABELS[_key(images)] = val.labels.numpy()[order]
    seeds = [int(s) for s in rng.integers(2**31, size=DRAWS)]
    return [{"args": [seeds, LABELS_PER_DIGIT, EPOCHS, images], "kwargs": {}}]


def strategy_accuracies(case: dict, predictions: list) -> list[float]:
    """Validation accuracy of each draw's predictions (labels known to the grader only)."""
    labels = _VAL_LABELS[_key(case["args"][-1])]
    return [float(np.mean(np.asarray(p).reshape(-1) == labels)) for p in predictions]


def _configure_check(case: dict, got: Any) -> str | None:
    name = f"your strategy on {DRAWS} draws of {LABELS_PER_DIGIT} labelled image(s) per digit, {EPOCHS} epochs each"
    if (problem := _raised(name, got)) is not None:
        return problem
    n = len(case["args"][-1])
    if not (isinstance(got, list) and len(got) == DRAWS
            and all(isinstance(p, np.ndarray) and p.shape == (n,) for p in got)):
        return f"{name}: the test could not train and evaluate your strategy (got {describe(got)})"
    accuracies = strategy_accuracies(case, got)
    mean = float(np.mean(accuracies))
    if mean < ACCURACY:
        return (f"{name}: mean validation accuracy {mean:.3f} (draws from {min(accuracies):.3f} to "
                f"{max(accuracies):.3f}), below the required {ACCURACY}.\nLikely cause: "
                + ("the new head barely learns: is it in the optimiser, with a large enough learning rate?"
                   if mean < 0.6 else
                   "the pretrained features are not used well: with one label per digit keep the backbone "
                   "(nearly) fixed and give the head a learning rate at which 10 steps are enough"))
    return None


TESTS = {
    "find_head": Test(cases=_find_cases, check=_find_check),
    "replace_head": Test(cases=_replace_cases, check=_replace_check),
    "freeze_backbone": Test(cases=_freeze_cases, check=_freeze_check),
    "configure": Test(cases=_configure_cases, check=_configure_check),
}
