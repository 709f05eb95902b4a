"""cnncourse.data: offline datasets, real MNIST/CIFAR-10 file formats written here in tiny form, loaders."""
import gzip
import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch

from cnncourse import data


# ------------------------------------------------------------------------------------------- digits
def test_digits_split_shapes_and_normalisation():
    train, val = data.digits()
    assert len(train) + len(val) == 1797
    assert abs(len(val) - 0.2 * 1797) <= 10  # stratified rounding per class
    x, y = train.tensors
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[1:] == (1, 8, 8) and train.classes == [str(i) for i in range(10)]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3  # standardised with train stats
    assert val.mean == train.mean and val.std == train.std
    assert set(y.tolist()) == set(range(10)) and set(val.labels.tolist()) == set(range(10))
    restored = train.denormalize(x)
    assert float(restored.min()) >= -1e-5 and float(restored.max()) <= 1 + 1e-5


def test_digits_is_deterministic_by_seed_and_upsamples():
    a, _ = data.digits(seed=1)
    b, _ = data.digits(seed=1)
    c, _ = data.digits(seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
    big, _ = data.digits(size=28)
    assert big.images.shape[1:] == (1, 28, 28) and len(big) == len(a)


# ------------------------------------------------------------------------------------------- shapes
def test_shapes_dataset_is_balanced_and_deterministic():
    train, val = data.shapes(n=240, size=24, seed=3)
    assert len(train) + len(val) == 240 and len(val) == 48
    assert train.images.shape[1:] == (3, 24, 24) and train.images.dtype == torch.float32
    assert train.classes == list(data.SHAPE_CLASSES)
    counts = torch.bincount(torch.cat([train.labels, val.labels]), minlength=6)
    assert counts.tolist() == [40] * 6
    again, _ = data.shapes(n=240, size=24, seed=3)
    other, _ = data.shapes(n=240, size=24, seed=4)
    assert torch.equal(train.images, again.images)
    assert not torch.equal(train.images, other.images)


def test_shapes_class_subset_and_noise():
    train, _ = data.shapes(n=60, classes=["circle", "ring"], noise=0.0, val_fraction=0.0)
    assert train.classes == ["circle", "ring"] and set(train.labels.tolist()) == {0, 1}
    pixels = train.denormalize(train.images)
    assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5
    with pytest.raises(ValueError, match="hexagon"):
        data.shapes(n=10, classes=["circle", "hexagon"])
    with pytest.raises(ValueError, match="val_fraction"):
        data.shapes(n=10, val_fraction=1.5)
    with pytest.raises(ValueError, match="scale"):
        data.shapes(n=10, scale=(0.3, 0.7))
    plain, _ = data.shapes(n=12, noise=0.0, clutter=0.0, val_fraction=0.0)
    corners = plain.denormalize(plain.images)[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert float((corners - corners[:, :, :1]).abs().max()) < 1e-5  # no clutter: a flat background


def test_shapes_classes_differ_in_outline_not_colour():
    """Mean colour per class is about the same: the label is only in the shape."""
    train, _ = data.shapes(n=600, size=16, noise=0.0, val_fraction=0.0)
    per_class = torch.stack([train.images[train.labels == k].mean(dim=(0, 2, 3)) for k in range(6)])
    assert float((per_class - per_class.mean(0)).abs().max()) < 0.25


# -------------------------------------------------------------------------------------------- MNIST
def write_idx(path, array: np.ndarray, compress: bool):
    """Write an IDX file as published: 0, 0, dtype code 0x08 (ubyte), ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def tiny_mnist(root, train=True, n=12, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if train else "t10k"
    suffix = ".gz" if compress else ""
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files(tmp_path, compress):
    images, labels = tiny_mnist(tmp_path, n=12, compress=compress)
    ds = data.mnist(tmp_path, train=True)
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.labels.tolist() == labels.tolist()
    expected = (images.astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(ds.images[:, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert ds.classes == [str(i) for i in range(10)]
    np.testing.assert_allclose(ds.denormalize(ds.images)[:, 0].numpy() * 255, images, atol=1e-3)


def test_mnist_test_split_and_missing_files_message(tmp_path):
    tiny_mnist(tmp_path, train=False, n=5)
    assert len(data.mnist(tmp_path, train=False)) == 5
    with pytest.raises(FileNotFoundError) as err:
        data.mnist(tmp_path, train=True)
    message = str(err.value)
    assert str(tmp_path.resolve()) in message
    assert "train-images-idx3-ubyte.gz" in message and "download=True" in message


def test_mnist_rejects_non_idx_files(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"<html>not found</html>")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.mnist(tmp_path)


def test_mnist_download_checks_md5(tmp_path, monkeypatch):
    """download=True fetches the missing files through torch.hub and verifies their checksum."""
    published = tmp_path / "published"
    tiny_mnist(published, n=4)
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append(url)
        name = url.rsplit("/", 1)[1]
        with open(dst, "wb") as f:
            f.write((published / name).read_bytes())

    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in published.iterdir()}
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(data, "MNIST_FILES", md5)
    ds = data.mnist(tmp_path / "mnist", download=True)
    assert len(ds) == 4 and len(fetched) == 2
    assert fetched[0].startswith(data.MNIST_MIRRORS[0])

    monkeypatch.setattr(data, "MNIST_FILES", {k: "0" * 32 for k in md5})  # wrong checksum: file removed
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        data.mnist(tmp_path / "other", download=True)
    assert not any((tmp_path / "other").glob("*.gz"))


def test_mnist_download_offline_error(tmp_path, monkeypatch):
    def offline(url, dst, progress=True):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match="Could not download train-images"):
        data.mnist(tmp_path, download=True)


# ----------------------------------------------------------------------------------------- CIFAR-10
def write_cifar_batch(path, n, seed):
    """A CIFAR-10 'python version' batch: pickled dict, data (n, 3072) uint8 rows (R, G, B planes), labels."""
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"training batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, n).tolist(), b"filenames": [b"x.png"] * n}
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    return batch


def tiny_cifar(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_cifar_batch(folder / name, n, seed) for seed, name in enumerate(data.CIFAR10_FILES)]


def test_cifar10_reads_python_batches(tmp_path):
    batches = tiny_cifar(tmp_path / "cifar-10-batches-py", n=3)
    train = data.cifar10(tmp_path)
    test = data.cifar10(tmp_path, train=False)
    assert train.images.shape == (15, 3, 32, 32) and len(test) == 3
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    assert train.labels.tolist() == sum((b[b"labels"] for b in batches[:5]), [])
    first = batches[0][b"data"][0].reshape(3, 32, 32).astype(np.float32) / 255
    np.testing.assert_allclose(train.denormalize(train.images[0]).numpy(), first, atol=1e-5)
    red_norm = (first[0] - 0.4914) / 0.2470
    np.testing.assert_allclose(train.images[0, 0].numpy(), red_norm, rtol=1e-5, atol=1e-5)


def test_cifar10_unpacks_archive_and_explains_missing_files(tmp_path):
    src = tmp_path / "src" / "cifar-10-batches-py"
    tiny_cifar(src, n=2)
    root = tmp_path / "cifar"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    assert len(data.cifar10(root)) == 10
    with pytest.raises(FileNotFoundError) as err:
        data.cifar10(tmp_path / "empty")
    assert "data_batch_1" in str(err.value) and "download=True" in str(err.value)
    assert str((tmp_path / "empty").resolve()) in str(err.value)


# ------------------------------------------------------------------------------------------ loaders
def test_make_loaders_are_seeded_and_val_is_ordered():
    train, val = data.shapes(n=120, size=8, val_fraction=0.25)
    first = [y.tolist() for _, y in data.make_loaders(train, val, batch_size=16, seed=5)[0]]
    again = [y.tolist() for _, y in data.make_loaders(train, val, batch_size=16, seed=5)[0]]
    other = [y.tolist() for _, y in data.make_loaders(train, val, batch_size=16, seed=6)[0]]
    assert first == again and first != other
    train_loader, val_loader = data.make_loaders(train, val, batch_size=16)
    x, y = next(iter(train_loader))
    assert x.shape == (16, 3, 8, 8) and y.dtype == torch.int64
    assert torch.cat([y for _, y in val_loader]).tolist() == val.labels.tolist()
    assert val_loader.batch_size == 64
    assert data.make_loaders(train, None)[1] is None


def test_split_is_stratified_and_seeded():
    full, _ = data.digits(val_fraction=0.0)
    a_train, a_val = data.split(full, 0.1, seed=0)
    b_train, b_val = data.split(full, 0.1, seed=0)
    assert torch.equal(a_val.labels, b_val.labels) and len(a_train) + len(a_val) == len(full)
    assert torch.bincount(a_val.labels).min() >= 14  # every digit represented (~18 each)
    assert a_val.classes == full.classes and a_val.mean == full.mean
    assert "ImageDataset(" in repr(a_val)
