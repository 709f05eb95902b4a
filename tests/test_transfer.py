"""Issue 8: the offline transfer-learning setup (cnncourse.pretrained, the shipped checkpoint) and the online
path of lecture 09 (torchvision-format VGG16 weights through ``models.load_pretrained`` from a ``file://`` URL).

No test downloads anything. VGG16's real weights are 528 MB; the tests build a file with torchvision's exact
keys and shapes whose tensors are *expanded scalars* (``torch.tensor(v).expand(shape)``): ``torch.save`` stores a
view's storage, so each tensor costs one number on disk and the whole file is a few KB, while loading it goes
through exactly the same ``torch.hub`` and ``load_state_dict`` code as the real file.
"""
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from solution_modules import load_solution_module

from cnncourse import data, models, pretrained, train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "solutions" / "transfer_learning" / pretrained.CHECKPOINT_NAME
RELEASED = ROOT / "assignments" / "transfer_learning" / pretrained.CHECKPOINT_NAME

# torchvision's vgg16 state_dict: (key prefix, shape of the weight); every layer also has a bias.
_VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
                (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512),
                (28, 512, 512)]
_VGG16_LINEARS = [(0, 25088, 4096), (3, 4096, 4096), (6, 4096, 1000)]


def torchvision_vgg16_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's VGG16 keys and shapes, written out independently of cnncourse.models. Each weight is a
    constant 1/fan_in (an averaging filter, so activations stay finite through 16 layers), biases are layer
    number / 100 so that a test can see which tensor went where."""
    state = {}
    for i, c_in, c_out in _VGG16_CONVS:
        state[f"features.{i}.weight"] = torch.tensor(1.0 / (9 * c_in)).expand(c_out, c_in, 3, 3)
        state[f"features.{i}.bias"] = torch.tensor(i / 100).expand(c_out)
    for i, f_in, f_out in _VGG16_LINEARS:
        state[f"classifier.{i}.weight"] = torch.tensor(1.0 / f_in).expand(f_out, f_in)
        state[f"classifier.{i}.bias"] = torch.tensor(-i / 100).expand(f_out)
    return state


@pytest.fixture(scope="module")
def vgg16_url(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("published")
    path = folder / Path(models.MODEL_URLS["vgg16"]).name  # vgg16-397923af.pth, as on download.pytorch.org
    torch.save(torchvision_vgg16_state_dict(), path)
    assert path.stat().st_size < 200_000, "the expanded-scalar trick should keep the file tiny"
    return path.as_uri()


# ----------------------------------------------------------------------------------- offline setup
def test_source_and_target_tasks_use_disjoint_images():
    source_train, source_val = pretrained.source_task()
    target_train, target_val = pretrained.target_task(labels_per_class=3, seed=5)
    assert len(source_train) == 719 and len(source_val) == len(target_val) == 359
    assert target_train.classes == ["even", "odd"] and len(target_train) == 30
    flat = lambda ds: {tuple(x.flatten().tolist()) for x in ds.images}  # noqa: E731
    assert not flat(source_train) & flat(target_train), "the target's labelled images must be new to the source model"
    # odd/even labels follow the digit; the labelled images are balanced: 3 per digit -> 15 odd, 15 even
    assert int(target_train.labels.sum()) == 15
    torch.testing.assert_close(target_val.labels, source_val.labels % 2)
    again, _ = pretrained.target_task(labels_per_class=3, seed=5)
    assert torch.equal(again.images, target_train.images), "same seed, same labelled images"
    other, _ = pretrained.target_task(labels_per_class=3, seed=6)
    assert not torch.equal(other.images, target_train.images)
    with pytest.raises(ValueError, match="labels_per_class"):
        pretrained.target_task(labels_per_class=0)


def test_shipped_checkpoint_is_small_released_and_pretrained():
    assert SHIPPED.is_file(), f"missing {SHIPPED}: run `python -m cnncourse.pretrained {SHIPPED}`"
    assert SHIPPED.stat().st_size <= 2_000_000
    assert RELEASED.read_bytes() == SHIPPED.read_bytes(), "run `cnncourse release transfer_learning`"
    model = pretrained.load_source_model(SHIPPED, build_if_missing=False)
    _, val = pretrained.source_task()
    _, loader = data.make_loaders(val, val, batch_size=128)
    assert train.evaluate(model, loader, device="cpu")["acc"] >= 0.9
    meta = torch.load(SHIPPED, weights_only=True)["meta"]
    assert meta["epochs"] == pretrained.PRETRAIN_EPOCHS and meta["val_acc"] >= 0.9


def test_load_source_model_without_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m cnncourse.pretrained"):
        pretrained.load_source_model(tmp_path / "none.pt", build_if_missing=False)


@pytest.mark.slow
def test_build_checkpoint_reproduces_the_shipped_one(tmp_path):
    start = time.perf_counter()
    path = pretrained.build_checkpoint(tmp_path / "rebuilt.pt")
    elapsed = time.perf_counter() - start
    rebuilt, shipped = (torch.load(p, weights_only=True) for p in (path, SHIPPED))
    assert rebuilt["model"].keys() == shipped["model"].keys()
    assert abs(rebuilt["meta"]["val_acc"] - shipped["meta"]["val_acc"]) <= 0.02
    assert elapsed < 60, f"building the checkpoint took {elapsed:.0f} s"


# ------------------------------------------------------------------------------------ online path
@pytest.mark.slow
def test_torchvision_format_vgg16_loads_from_file_url(vgg16_url, tmp_path):
    model = models.vgg16()
    models.load_pretrained(model, vgg16_url, progress=False, model_dir=tmp_path / "hub")
    assert (tmp_path / "hub" / "vgg16-397923af.pth").is_file(), "torch.hub caches the file under its own name"
    state = model.state_dict()
    assert state.keys() == torchvision_vgg16_state_dict().keys()
    assert torch.all(state["features.28.bias"] == 0.28) and torch.all(state["classifier.6.bias"] == -0.06)
    assert torch.all(state["features.0.weight"] == 1 / 27)
    assert models.count_params(model) == 138_357_544
    with pytest.raises(RuntimeError, match="do not fit"):
        models.load_pretrained(models.vgg11(), vgg16_url, progress=False, model_dir=tmp_path / "hub")


def _fake_cifar10(root: Path, per_batch: int = 12) -> None:
    """The CIFAR-10 "python version" layout with a few random images per batch file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in data.CIFAR10_FILES:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.slow
def test_lecture09_runs_its_vgg16_section(vgg16_url, tmp_path, monkeypatch):
    """Lecture 09's online path, end to end: torchvision-format weights from a file:// URL, CIFAR-10 files on disk."""
    import nbformat
    import papermill

    from cnncourse.channels import ReliableKernelManager

    _fake_cifar10(tmp_path / "cifar")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # the hub cache the lecture looks at
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "lectures" / "09_transfer_learning.ipynb"), str(out),
                               parameters={"SMOKE": True, "VGG_WEIGHTS": vgg16_url,
                                           "CIFAR_ROOT": str(tmp_path / "cifar")},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                               kernel_manager_class=ReliableKernelManager)  # never waits on a missed reply
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "running the VGG16 section" in text
    assert "VGG16 (ImageNet features, new head) on 40 CIFAR-10 images" in text


# ------------------------------------------------------------------ the transfer_learning assignment (issue 18)
def _assignment_oracle():
    return load_solution_module("transfer_learning/oracle.py")


def _cell(grade_id: str) -> str:
    import json

    nb = json.loads((SHIPPED.parent / "transfer_learning.ipynb").read_text())
    (source,) = ["".join(c["source"]) for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return source


def test_assignment_states_the_graders_settings_and_rule():
    oracle = _assignment_oracle()
    stated: dict = {}
    exec(_cell("strategy_rules").split("\n\n\ndef ")[0], stated)
    assert (stated["EPOCHS"], stated["LABELS_PER_DIGIT"], stated["DRAWS"], stated["ACCURACY"]) == (
        oracle.EPOCHS, oracle.LABELS_PER_DIGIT, oracle.DRAWS, oracle.ACCURACY)
    setup = _cell("setup")
    assert len(setup.splitlines()) <= 15
    from cnncourse.testcells.owncode import OwnCode

    (rule_line,) = [line for line in setup.splitlines() if line.startswith("RULE = ")]
    assert eval(rule_line.split("=", 1)[1], {"OwnCode": OwnCode}) == oracle.RULES
    assert 'check_notebook("transfer_learning.ipynb", RULE)' in _cell("test_find_head")
    # lecture 09's position on BatchNorm in a frozen backbone is the one the notebook grades
    assert "BatchNorm in a frozen backbone" in (ROOT / "lectures" / "09_transfer_learning.ipynb").read_text()
    assert "keeps every BatchNorm layer of the backbone in **evaluation mode**" in (
        SHIPPED.parent / "transfer_learning.ipynb").read_text()


def test_assignment_strategy_is_scored_on_labels_the_kernel_never_gets():
    oracle = _assignment_oracle()
    rng = np.random.default_rng(3)
    (case,) = oracle.TESTS["configure"].cases(rng)
    seeds, labels_per_digit, epochs, images = case["args"]
    assert len(seeds) == oracle.DRAWS and labels_per_digit == oracle.LABELS_PER_DIGIT and epochs == oracle.EPOCHS
    labels = oracle._VAL_LABELS[oracle._key(images)]
    assert images.shape == (359, 1, 8, 8) and not any(
        isinstance(a, np.ndarray) and a.shape == labels.shape for a in case["args"])
    right = [labels.copy() for _ in seeds]
    assert oracle.TESTS["configure"].check(case, right) is None
    coin = [np.zeros_like(labels) for _ in seeds]     # "even" for everything: about half right
    assert "the new head barely learns" in oracle.TESTS["configure"].check(case, coin)
    (other,) = oracle.TESTS["configure"].cases(np.random.default_rng(4))
    assert other["args"][0] != seeds and not np.array_equal(other["args"][-1], images)
