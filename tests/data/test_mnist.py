import gzip
import hashlib
import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_partial.data.mnist import IDX_FILES, load_mnist, mnist_dataset, mnist_root

# Per-class counts of the MNIST training and test sets (LeCun et al.'s distribution).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the uncompressed files, from the table in the shared data README.
UNCOMPRESSED_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _write_idx(raw, images, labels, compress):
    """Write the four IDX files (same images for train and test) in the format of LeCun's MNIST files."""
    raw.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    image_bytes = struct.pack(">4i", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">2i", 2049, n) + labels.astype(np.uint8).tobytes()
    for name in IDX_FILES:
        data = image_bytes if "images" in name else label_bytes
        if compress:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)


@pytest.mark.data
def test_real_mnist_sizes_class_counts_and_pixel_statistics(real_data_root):
    images, labels = load_mnist("train", real_data_root, validation_size=0)
    assert images.shape == (60000, 784) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert labels.bincount().tolist() == TRAIN_COUNTS
    assert images.min() == 0 and images.max() == 1
    # The well-known normalisation constants of MNIST's training images.
    assert images.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert images.std().item() == pytest.approx(0.3081, abs=1e-4)

    test_images, test_labels = load_mnist("test", real_data_root, flatten=False)
    assert test_images.shape == (10000, 1, 28, 28)
    assert test_labels.bincount().tolist() == TEST_COUNTS


@pytest.mark.data
def test_real_mnist_decompressed_bytes_match_the_published_md5(real_data_root):
    raw = mnist_root(real_data_root) / "MNIST" / "raw"
    for name, md5 in UNCOMPRESSED_MD5.items():
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == md5, name


@pytest.mark.data
def test_validation_split_is_the_last_training_rows(real_data_root):
    all_images, all_labels = load_mnist("train", real_data_root, validation_size=0)
    train_images, train_labels = load_mnist("train", real_data_root)
    val_images, val_labels = load_mnist("validation", real_data_root)
    assert len(train_labels) == 50000 and len(val_labels) == 10000
    assert torch.equal(torch.cat([train_labels, val_labels]), all_labels)
    assert torch.equal(val_images, all_images[50000:])
    small_val, _ = load_mnist("validation", real_data_root, validation_size=100)
    assert torch.equal(small_val, all_images[-100:])


@pytest.mark.data
def test_data_root_from_the_environment_variable(real_data_root, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_DATA", str(real_data_root))
    dataset = mnist_dataset(train=False)
    assert len(dataset) == 10000
    assert dataset.targets.bincount().tolist() == TEST_COUNTS


@pytest.mark.data
def test_cache_is_reused_without_re_extraction(real_data_root):
    raw = mnist_root(real_data_root) / "MNIST" / "raw"

    def identities():
        return [((raw / name).stat().st_ino, (raw / name).stat().st_mtime_ns) for name in IDX_FILES]

    before = identities()
    assert mnist_root(real_data_root) / "MNIST" / "raw" == raw
    assert identities() == before
    assert not [p for p in raw.iterdir() if p.name not in IDX_FILES], "temporary files were left behind"


def test_uncompressed_files_are_read_in_place(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 28, 28))
    digits = np.array([3, 1, 4, 1, 5, 9, 2])
    _write_idx(tmp_path / "MNIST" / "raw", pixels, digits, compress=False)
    assert mnist_root(tmp_path) == tmp_path
    images, labels = load_mnist("train", tmp_path, validation_size=2, flatten=False)
    assert images.shape == (5, 1, 28, 28)
    assert labels.tolist() == [3, 1, 4, 1, 5]
    assert torch.equal(images[:, 0] * 255, torch.as_tensor(pixels[:5], dtype=torch.float32))


def test_stale_cache_is_refreshed_when_the_archive_is_newer(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    pixels = np.zeros((4, 28, 28))
    _write_idx(raw, pixels, np.array([0, 1, 2, 3]), compress=True)
    _, labels = load_mnist("test", tmp_path)
    assert labels.tolist() == [0, 1, 2, 3]
    _write_idx(raw, pixels, np.array([7, 7, 7, 7]), compress=True)
    cached = mnist_root(tmp_path) / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    newer = cached.stat().st_mtime_ns + 10**9
    for name in IDX_FILES:
        os.utime(raw / f"{name}.gz", ns=(newer, newer))
    _, labels = load_mnist("test", tmp_path)
    assert labels.tolist() == [7, 7, 7, 7]


def test_missing_files_raise_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="PYRO_PARTIAL_DATA") as info:
        load_mnist("train", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "download=True" in message


def test_bad_arguments_raise(tmp_path):
    _write_idx(tmp_path / "MNIST" / "raw", np.zeros((3, 28, 28)), np.zeros(3), compress=False)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("valid", tmp_path)
    with pytest.raises(ValueError, match="validation_size must be in"):
        load_mnist("train", tmp_path, validation_size=3)
    with pytest.raises(ValueError, match="validation_size=0"):
        load_mnist("validation", tmp_path, validation_size=0)


def test_fashion_mnist_reads_its_own_gzipped_idx_files(tmp_path):
    """Fashion-MNIST's files live under FashionMNIST/raw with MNIST's names and format; the splits are
    MNIST's; MNIST's files next to them are not read for it."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(6, 28, 28))
    classes = np.array([9, 0, 0, 3, 0, 2])  # ankle boot, T-shirt/top, ..., as in the first training images
    _write_idx(tmp_path / "FashionMNIST" / "raw", pixels, classes, compress=True)
    _write_idx(tmp_path / "MNIST" / "raw", np.zeros((6, 28, 28)), np.ones(6), compress=True)
    train, train_labels = load_mnist("train", tmp_path, validation_size=2, dataset="fashion-mnist")
    validation, validation_labels = load_mnist(
        "validation", tmp_path, validation_size=2, dataset="fashion-mnist"
    )
    test, test_labels = load_mnist("test", tmp_path, flatten=False, dataset="fashion-mnist")
    assert train.shape == (4, 784) and validation.shape == (2, 784) and test.shape == (6, 1, 28, 28)
    assert train_labels.tolist() == [9, 0, 0, 3] and validation_labels.tolist() == [0, 2]
    assert test_labels.tolist() == classes.tolist()
    assert torch.equal(test[:, 0] * 255, torch.as_tensor(pixels, dtype=torch.float32))
    assert torch.equal(torch.cat([train, validation]), test.reshape(6, -1))
    assert load_mnist("test", tmp_path)[1].tolist() == [1] * 6  # MNIST still reads its own files
    dataset = mnist_dataset(train=False, root=tmp_path, dataset="fashion-mnist")
    assert dataset.classes[9] == "Ankle boot" and len(dataset) == 6


def test_fashion_mnist_missing_files_name_the_expected_paths(tmp_path):
    _write_idx(tmp_path / "MNIST" / "raw", np.zeros((2, 28, 28)), np.zeros(2), compress=True)
    with pytest.raises(FileNotFoundError, match="FashionMNIST not found") as info:
        load_mnist("train", tmp_path, dataset="fashion-mnist")
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert all(name in message for name in IDX_FILES) and "PYRO_PARTIAL_DATA" in message
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_mnist("train", tmp_path, dataset="kmnist")


def test_32x32_images_by_padding_and_by_bilinear_resizing(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "FashionMNIST" / "raw", pixels, np.arange(3), compress=True)
    native, _ = load_mnist("test", tmp_path, flatten=False, dataset="fashion-mnist")
    padded, _ = load_mnist(
        "test", tmp_path, flatten=False, dataset="fashion-mnist", image_size=32, resize_mode="pad"
    )
    assert padded.shape == (3, 1, 32, 32)
    border = padded.clone()
    border[..., 2:30, 2:30] = 0
    assert torch.equal(padded[..., 2:30, 2:30], native) and not border.any()
    resized, _ = load_mnist("test", tmp_path, dataset="fashion-mnist", image_size=32)
    assert resized.shape == (3, 1024) and 0 <= resized.min() and resized.max() <= 1
    # the reference code resizes PIL images (torchvision's Resize(32)); PIL rounds to whole grey levels
    reference = np.stack(
        [np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR)) for image in pixels]
    )
    assert np.abs(resized.numpy().reshape(3, 32, 32) * 255 - reference).max() <= 1.0
    with pytest.raises(ValueError, match="28 \\+ an even number"):
        load_mnist("test", tmp_path, dataset="fashion-mnist", image_size=31, resize_mode="pad")
    with pytest.raises(ValueError, match="resize mode must be one of"):
        load_mnist("test", tmp_path, dataset="fashion-mnist", image_size=32, resize_mode="nearest")
