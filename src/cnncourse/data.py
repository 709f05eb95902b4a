"""Offline datasets for the course, as ``torch.utils.data`` datasets and loaders.

Every dataset here is a :class:`ImageDataset`: a ``TensorDataset`` of float32 images ``(N, C, H, W)`` and
int64 labels ``(N,)`` with ``.classes`` (class names), ``.mean``/``.std`` (per-channel normalisation applied).

Normalisation: pixels are first scaled to [0, 1], then each channel is standardised,
``x = (x - mean) / std``. ``digits()`` and ``shapes()`` compute mean/std on their *training* split and reuse
them for validation; ``mnist()`` and ``cifar10()`` use the usual published constants (MNIST 0.1307/0.3081;
CIFAR-10 (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435, 0.2616)). ``ds.denormalize(x)`` undoes it for plotting.

* :func:`digits` -- scikit-learn's 1,797 8x8 handwritten digits (ships with scikit-learn; optionally upsampled).
* :func:`shapes` -- generated coloured shapes on textured backgrounds, deterministic by seed.
* :func:`mnist`, :func:`cifar10` -- the real datasets read from their standard files in ``root``; downloaded
  (checksum verified) only with ``download=True``.
* :func:`split`, :func:`make_loaders` -- seeded train/val splits and DataLoaders.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["ImageDataset", "digits", "shapes", "SHAPE_CLASSES", "mnist", "cifar10", "split", "make_loaders",
           "MNIST_FILES", "CIFAR10_FILES", "MNIST_CLASSES", "CIFAR10_CLASSES"]

MNIST_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "stripes")


class ImageDataset(TensorDataset):
    """``TensorDataset(images, labels)`` with ``.classes``, ``.mean``, ``.std`` (the normalisation applied)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                 mean: Sequence[float], std: Sequence[float]):
        super().__init__(images.float().contiguous(), labels.long())
        self.classes = list(classes)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @property
    def images(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors[1]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation: back to [0, 1] pixels (for ``plt.imshow``)."""
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return x * std + mean

    def subset(self, index) -> "ImageDataset":
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.mean, self.std)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"ImageDataset({n} images, {c}x{h}x{w}, {len(self.classes)} classes: {self.classes})"


def _normalise(x: torch.Tensor, mean=None, std=None):
    """x: (N, C, H, W) in [0, 1]. Returns (normalised x, mean, std) with per-channel statistics."""
    if mean is None:
        mean = x.mean(dim=(0, 2, 3)).tolist()
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s, mean, std


def _split_index(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: each class contributes ``val_fraction`` of its examples to validation."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * val_fraction))
        val.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def _make_split(x01: torch.Tensor, y: np.ndarray, classes, val_fraction: float, seed: int):
    tr, va = _split_index(y, val_fraction, seed)
    x_tr, mean, std = _normalise(x01[tr])
    x_va, _, _ = _normalise(x01[va], mean, std)
    y = torch.as_tensor(y, dtype=torch.long)
    return ImageDataset(x_tr, y[tr], classes, mean, std), ImageDataset(x_va, y[va], classes, mean, std)


def split(dataset: ImageDataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Stratified, seeded split of a dataset into (train, val), e.g. a validation set out of MNIST's train set."""
    tr, va = _split_index(dataset.labels.numpy(), val_fraction, seed)
    return dataset.subset(torch.as_tensor(tr)), dataset.subset(torch.as_tensor(va))


# --------------------------------------------------------------------------------------------- digits
def digits(size: int = 8, seed: int = 0, val_fraction: float = 0.2) -> tuple[ImageDataset, ImageDataset]:
    """scikit-learn's handwritten digits: 1,797 grey 8x8 images of 0-9 (no download; ships with sklearn).

    Returns ``(train, val)`` with images ``(N, 1, size, size)``; ``size > 8`` upsamples bilinearly (e.g. 28
    to feed MNIST-shaped models). Split stratified by class with ``seed``; default 1,437 train / 360 val.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return _make_split(x, bunch.target, [str(i) for i in range(10)], val_fraction, seed)


# --------------------------------------------------------------------------------------------- shapes
def _render_shapes(labels: np.ndarray, size: int, noise: float, rng: np.random.Generator,
                   scale: tuple[float, float] = (0.16, 0.3), clutter: float = 1.0) -> np.ndarray:
    """Draw one shape per image at a random position, scale, rotation and colour on a textured background.

    Returns (N, 3, size, size) float32 in [0, 1]. Colour and position carry no class information, so a
    classifier must recognise the outline -- wherever it is, which is what convolution + pooling are good at.
    """
    n = len(labels)
    col = lambda *shape: rng.random((n, *shape), dtype=np.float32)  # noqa: E731
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32) + 0.5, np.arange(size, dtype=np.float32) + 0.5,
                         indexing="ij")
    # background: a colour, a linear gradient and a sinusoidal texture of random frequency and direction
    bg = col(3)
    grad_dir = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    gx = (np.cos(grad_dir)[:, None, None] * xx + np.sin(grad_dir)[:, None, None] * yy) / size - 0.5
    tex_dir = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    tex_freq = rng.uniform(0.15, 0.6, n).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    tex = np.sin(tex_freq[:, None, None] * (np.cos(tex_dir)[:, None, None] * xx
                                           + np.sin(tex_dir)[:, None, None] * yy) + phase[:, None, None])
    background = bg[:, :, None, None] + (0.25 * clutter) * gx[:, None] + (0.12 * clutter) * tex[:, None]
    background = background.astype(np.float32)

    # shape colour: random, but far enough from the background colour to stay visible
    fg = col(3)
    for _ in range(20):
        close = np.linalg.norm(fg - bg, axis=1) < 0.6
        if not close.any():
            break
        fg[close] = rng.random((int(close.sum()), 3), dtype=np.float32)

    radius = (rng.uniform(*scale, n) * size).astype(np.float32)
    cx = rng.uniform(radius, size - radius).astype(np.float32)
    cy = rng.uniform(radius, size - radius).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    dx = (xx[None] - cx[:, None, None]) / radius[:, None, None]
    dy = (yy[None] - cy[:, None, None]) / radius[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's own rotated frame, radius 1
    r = np.sqrt(u * u + v * v)
    box = np.maximum(np.abs(u), np.abs(v))
    edges = [np.cos(a) * u + np.sin(a) * v for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)]
    masks = {
        "circle": r <= 1.0,
        "square": box <= 0.8,
        "triangle": np.max(edges, axis=0) <= 0.5,
        "cross": ((np.abs(u) <= 0.28) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.28) & (np.abs(u) <= 1.0)),
        "ring": (r <= 1.0) & (r >= 0.55),
        "stripes": (box <= 0.85) & (np.sin(u * 2.0 * np.pi) > 0),
    }
    mask = np.zeros((n, size, size), dtype=bool)
    for k, name in enumerate(SHAPE_CLASSES):
        sel = labels == k
        mask[sel] = masks[name][sel]
    img = np.where(mask[:, None], fg[:, :, None, None], background)
    img += noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def shapes(n: int = 2048, size: int = 32, classes: Sequence[str] | None = None, noise: float = 0.1,
           seed: int = 0, val_fraction: float = 0.2,
           scale: tuple[float, float] = (0.16, 0.3), clutter: float = 1.0) -> tuple[ImageDataset, ImageDataset]:
    """Generated RGB images of shapes: ``n`` images ``(3, size, size)``, balanced over ``classes``.

    ``classes``: a subset of :data:`SHAPE_CLASSES` (default: all six: circle, square, triangle, cross, ring,
    stripes). Each image has one shape of random position, size, rotation and colour on a background with a
    colour gradient and a sinusoidal texture, plus Gaussian pixel ``noise`` (std, in [0, 1] pixel units).
    ``scale``: range of the shape's radius as a fraction of ``size``; ``clutter``: strength of the background
    gradient and texture (0: plain backgrounds; 0.5 with ``noise=0.05`` is an easier variant that a small CNN
    learns in a few CPU epochs).
    Same ``seed`` -> same images. Returns ``(train, val)``, stratified; labels index ``ds.classes``.
    """
    classes = list(SHAPE_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if unknown or not classes:
        raise ValueError(f"unknown shape classes {unknown}; choose from {SHAPE_CLASSES}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if not 0 < scale[0] <= scale[1] <= 0.5:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 0.5, got {scale}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(classes))
    shape_ids = np.array([SHAPE_CLASSES.index(c) for c in classes])[labels]
    x = torch.from_numpy(_render_shapes(shape_ids, size, noise, rng, scale, clutter))
    return _make_split(x, labels, classes, val_fraction, seed)


# ------------------------------------------------------------------------------------- MNIST / CIFAR-10
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {  # file -> md5 of the .gz file (as published; the same list torchvision uses)
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
_MNIST_NORM = ((0.1307,), (0.3081,))
_CIFAR10_NORM = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(urls: Sequence[str], dest: Path, md5: str) -> None:
    """Download the first URL that works to ``dest`` and check its MD5; remove the file if it does not match."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            torch.hub.download_url_to_file(url, str(dest), progress=True)
        except OSError as err:
            errors.append(f"{url}: {err}")
            continue
        if _md5(dest) != md5:
            dest.unlink()
            errors.append(f"{url}: checksum mismatch (expected md5 {md5})")
            continue
        return
    raise RuntimeError(f"Could not download {dest.name}:\n  " + "\n  ".join(errors))


def read_idx(path: os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format; ``.gz`` or raw): magic (0, 0, dtype code, ndim), big-endian int32
    dimensions, then the data. Returns the array with its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    dtype, ndim = np.dtype(dtypes[data[2]]), data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    return arr.reshape(shape)


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / name.removesuffix(".gz"), root / "raw" / name,
                      root / "raw" / name.removesuffix(".gz"), root / "MNIST" / "raw" / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def mnist(root: os.PathLike = "data/mnist", train: bool = True, download: bool = False) -> ImageDataset:
    """MNIST (60,000 train / 10,000 test grey 28x28 digits) read from the IDX files in ``root``.

    Files (``.gz`` or unpacked): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``. With ``download=True`` missing files are fetched
    (MD5 checked). Images ``(N, 1, 28, 28)`` normalised with mean 0.1307, std 0.3081. For a validation set
    use ``split(mnist(), val_fraction, seed)``; ``train=False`` gives the test set.
    """
    root = Path(root).expanduser()
    prefix = "train" if train else "t10k"
    names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    paths = [_find(root, name) for name in names]
    if None in paths and download:
        for name, path in zip(names, paths):
            if path is None:
                _download([m + name for m in MNIST_MIRRORS], root / name, MNIST_FILES[name])
        paths = [_find(root, name) for name in names]
    if None in paths:
        missing = [n for n, p in zip(names, paths) if p is None]
        raise FileNotFoundError(
            f"MNIST files not found in {root.resolve()}: missing {missing}. Either call "
            f"mnist(root={str(root)!r}, download=True) on a machine with internet access, or copy the files "
            f"{list(MNIST_FILES)} (gzipped or not) from {MNIST_MIRRORS[0]} into {root.resolve()}.")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{paths[0]} / {paths[1]}: expected images (N, 28, 28) and labels (N,), got "
                         f"{images.shape} and {labels.shape}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x, mean, std = _normalise(x, *_MNIST_NORM)
    return ImageDataset(x, torch.from_numpy(labels.astype(np.int64)), MNIST_CLASSES, mean, std)


def cifar10(root: os.PathLike = "data/cifar10", train: bool = True, download: bool = False) -> ImageDataset:
    """CIFAR-10 (50,000 train / 10,000 test RGB 32x32 images, 10 classes) from the "python version" batches.

    ``root`` holds ``cifar-10-batches-py/`` (as unpacked from ``cifar-10-python.tar.gz``) or the batch files
    themselves: ``data_batch_1`` .. ``data_batch_5`` (train), ``test_batch`` (test); the archive itself is
    unpacked if present. ``download=True`` fetches the archive (MD5 checked). Images ``(N, 3, 32, 32)``
    normalised with the usual per-channel mean/std; ``train=False`` gives the test set.
    """
    root = Path(root).expanduser()
    names = CIFAR10_FILES[:5] if train else CIFAR10_FILES[5:]

    def batch_dir() -> Path | None:
        for d in (root / "cifar-10-batches-py", root):
            if all((d / name).is_file() for name in names):
                return d
        return None

    folder = batch_dir()
    archive = root / "cifar-10-python.tar.gz"
    if folder is None and not archive.is_file() and download:
        _download([CIFAR10_URL], archive, CIFAR10_MD5)
    if folder is None and archive.is_file():
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
        folder = batch_dir()
    if folder is None:
        raise FileNotFoundError(
            f"CIFAR-10 files not found in {root.resolve()}: expected {names} in {root.resolve()} or in "
            f"{(root / 'cifar-10-batches-py').resolve()}. Either call cifar10(root={str(root)!r}, download=True) "
            f"on a machine with internet access, or download {CIFAR10_URL} and put it (or its unpacked "
            f"cifar-10-batches-py folder) into {root.resolve()}.")
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
        xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0)
    x, mean, std = _normalise(x, *_CIFAR10_NORM)
    return ImageDataset(x, torch.from_numpy(np.concatenate(ys)), CIFAR10_CLASSES, mean, std)


# -------------------------------------------------------------------------------------------- loaders
def make_loaders(train_ds, val_ds=None, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 eval_batch_size: int | None = None) -> tuple[DataLoader, DataLoader | None]:
    """``(train_loader, val_loader)``: training batches shuffled by a generator seeded with ``seed`` (same seed,
    same order, epoch after epoch of a rerun); validation in order with ``eval_batch_size`` (default 4x).
    Memory is pinned when CUDA is available so host-to-GPU copies can overlap with compute."""
    pin = torch.cuda.is_available()
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=generator,
                              num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)
    val_loader = None
    if val_ds is not None:
        val_loader = DataLoader(val_ds, batch_size=eval_batch_size or 4 * batch_size, shuffle=False,
                                num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)
    return train_loader, val_loader
