"""A small pretrained CNN for lecture 09 and the ``transfer_learning`` assignment, built offline.

Real transfer learning starts from weights learned on a big labelled dataset (VGG16's ImageNet weights are a
528 MB download). This module builds a miniature of that situation that runs anywhere in seconds, with no
download:

* the **source task**: recognise the ten digits of scikit-learn's ``digits`` (8x8 grey images), using only
  half of its training images (:func:`source_task`);
* the **target task**: a *new question* about *other* images — "is this digit odd?" — with only a few
  labelled examples per digit, taken from the other half (:func:`target_task`);
* the **pretrained model**: ``models.small_cnn(10, in_channels=1)`` trained on the source task
  (:func:`pretrain`), saved as a checkpoint (:func:`build_checkpoint`, 22 KB) and loaded back with
  :func:`load_source_model`.

Both splits are drawn with a fixed seed, so the same images play the same role everywhere. The assignment ships
the checkpoint built by ``python -m cnncourse.pretrained solutions/transfer_learning/digits_cnn.pt``; when the
file is missing, :func:`load_source_model` rebuilds it (deterministic on one CPU thread, a few seconds).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnncourse import data, models, train

__all__ = ["SOURCE_SPLIT_SEED", "CHECKPOINT_NAME", "source_task", "target_task", "source_model", "pretrain",
           "build_checkpoint", "load_source_model"]

SOURCE_SPLIT_SEED = 2026          # which half of digits' training images is the source task's
CHECKPOINT_NAME = "digits_cnn.pt"  # the file name the assignment ships
PRETRAIN_EPOCHS = 8
PRETRAIN_LR = 3e-3


def _source_target_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SOURCE_SPLIT_SEED).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def _relabel_odd(ds: data.ImageDataset) -> data.ImageDataset:
    return data.ImageDataset(ds.images, ds.labels % 2, ["even", "odd"], ds.mean, ds.std)


def source_task(size: int = 8) -> tuple[data.ImageDataset, data.ImageDataset]:
    """The source task: the ten digits, on half of ``digits()``'s 1,438 training images (719).

    Returns ``(train, val)``; ``val`` is ``digits()``'s validation split (359 images, never used for training
    by either task). Images ``(N, 1, size, size)``, labels 0-9.
    """
    train_ds, val_ds = data.digits(size=size, seed=0)
    source_idx, _ = _source_target_indices(len(train_ds))
    return train_ds.subset(torch.as_tensor(source_idx)), val_ds


def target_task(labels_per_class: int = 2, size: int = 8, seed: int = 0
                ) -> tuple[data.ImageDataset, data.ImageDataset]:
    """The target task: "is the digit odd?" (classes ``["even", "odd"]``) with few labels.

    ``train`` holds ``labels_per_class`` images of each digit 0-9 (so ``10 * labels_per_class`` images), drawn
    with ``seed`` from the half of ``digits()``'s training images that the source task never saw. ``val`` is
    ``digits()``'s 359-image validation split with the same odd/even labels.
    """
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be at least 1, got {labels_per_class}")
    train_ds, val_ds = data.digits(size=size, seed=0)
    _, pool = _source_target_indices(len(train_ds))
    digit = train_ds.labels.numpy()[pool]
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(10):
        candidates = pool[digit == c]
        if labels_per_class > len(candidates):
            raise ValueError(f"labels_per_class={labels_per_class} is more than the {len(candidates)} images of "
                             f"digit {c} in the target half")
        picked.append(rng.choice(candidates, labels_per_class, replace=False))
    index = torch.as_tensor(np.sort(np.concatenate(picked)))
    return _relabel_odd(train_ds.subset(index)), _relabel_odd(val_ds)


def source_model() -> nn.Sequential:
    """The architecture of the pretrained model: ``models.small_cnn(10, in_channels=1)`` (two conv stages with
    BatchNorm, global average pooling, and a ``Linear(32, 10)`` head as its last layer)."""
    return models.small_cnn(10, in_channels=1)


def pretrain(epochs: int = PRETRAIN_EPOCHS, seed: int = 0, device="cpu", progress: bool = False
             ) -> tuple[nn.Sequential, train.History]:
    """Train :func:`source_model` on :func:`source_task` with Adam (lr 3e-3, batch 32); returns (model, history)."""
    train_ds, val_ds = source_task()
    train_loader, val_loader = data.make_loaders(train_ds, val_ds, batch_size=32, seed=seed)
    train.seed_everything(seed)
    model = source_model()
    history = train.fit(model, train_loader, val_loader, epochs=epochs, lr=PRETRAIN_LR, device=device,
                        progress=progress)
    return model.cpu(), history


def build_checkpoint(path: str | os.PathLike, seed: int = 0, progress: bool = False) -> Path:
    """Pretrain on one CPU thread (so the result does not depend on the thread count) and save the weights.

    The file is a ``{"model": state_dict, "meta": {...}}`` dict, the checkpoint format that
    :func:`cnncourse.models.load_pretrained` reads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, history = pretrain(seed=seed, device="cpu", progress=progress)
    finally:
        torch.set_num_threads(threads)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": "digits 0-9 (source half)", "epochs": history.epochs, "seed": seed,
            "val_acc": float(history.val_acc[-1]), "torch": str(torch.__version__)}
    torch.save({"model": model.state_dict(), "meta": meta}, path)
    return path


def load_source_model(path: str | os.PathLike = CHECKPOINT_NAME, build_if_missing: bool = True) -> nn.Sequential:
    """The pretrained source model from ``path`` (rebuilt there first if the file is missing and
    ``build_if_missing``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        if not build_if_missing:
            raise FileNotFoundError(f"no checkpoint at {path}; create it with `python -m cnncourse.pretrained {path}`")
        build_checkpoint(path)
    model = models.load_pretrained(source_model(), path, progress=False)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    """``python -m cnncourse.pretrained PATH``: build the checkpoint and print its source accuracy."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cnncourse.pretrained PATH", file=sys.stderr)
        return 2
    path = build_checkpoint(args[0])
    meta = torch.load(path, weights_only=True)["meta"]
    print(f"wrote {path} ({path.stat().st_size:,} bytes): source val acc {meta['val_acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
