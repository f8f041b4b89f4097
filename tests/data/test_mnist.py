import gzip
import hashlib
import os
import shutil
import struct

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from pyro_partial.data.download import DownloadError
from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.mnist import DATASETS, IDX_FILES, load_mnist, mnist_dataset, mnist_root

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


def _idx_bytes(images, labels):
    n, rows, cols = images.shape
    image_bytes = struct.pack(">4i", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()
    return image_bytes, struct.pack(">2i", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_splits(raw, train, test, compress=True):
    """Write training and test files of different sizes; ``train`` and ``test`` are (images, labels)."""
    raw.mkdir(parents=True, exist_ok=True)
    contents = {}
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        image_bytes, label_bytes = _idx_bytes(images, labels)
        contents[f"{prefix}-images-idx3-ubyte"] = image_bytes
        contents[f"{prefix}-labels-idx1-ubyte"] = label_bytes
    for name, data in contents.items():
        if compress:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return contents


def _small_splits(seed=0):
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, size=(6, 28, 28)), np.array([5, 0, 4, 1, 9, 2])
    test = rng.integers(0, 256, size=(4, 28, 28)), np.array([7, 2, 1, 0])
    return train, test


@pytest.mark.parametrize("compress", [True, False])
def test_swapped_label_files_are_named_in_the_error(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    _write_splits(raw, *_small_splits(), compress=compress)
    suffix = ".gz" if compress else ""
    train, test = raw / f"train-labels-idx1-ubyte{suffix}", raw / f"t10k-labels-idx1-ubyte{suffix}"
    train_bytes, test_bytes = train.read_bytes(), test.read_bytes()
    train.write_bytes(test_bytes)
    test.write_bytes(train_bytes)
    # Unchecked, the test split gave 4 images with 6 labels and the training split paired 4 of its 6 images
    # with the test labels. All four files are checked whichever split is asked for.
    for split in ("test", "train"):
        with pytest.raises(DataFileError) as info:
            load_mnist(split, tmp_path, validation_size=0)
        message = str(info.value)
        assert str(train) in message
        assert "train-labels-idx1-ubyte" in message and "4 labels" in message and "6 images" in message
        assert "train-images-idx3-ubyte" in message and "one label per image" in message


def test_an_images_file_in_place_of_a_labels_file_is_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_splits(raw, *_small_splits(), compress=False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes())
    with pytest.raises(DataFileError) as info:
        load_mnist("test", tmp_path)
    message = str(info.value)
    assert message.startswith(str(raw / "t10k-labels-idx1-ubyte"))
    assert "magic number 0x00000803" in message and "magic number 0x00000801" in message


def test_images_of_the_wrong_size_are_rejected(tmp_path):
    rng = np.random.default_rng(0)
    _write_splits(
        tmp_path / "MNIST" / "raw",
        (rng.integers(0, 256, size=(3, 32, 32)), np.arange(3)),
        (rng.integers(0, 256, size=(2, 28, 28)), np.arange(2)),
    )
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.*32x32 pixels; expected 28x28"):
        load_mnist("test", tmp_path)


def test_labels_out_of_range_are_rejected(tmp_path):
    train, test = _small_splits()
    _write_splits(tmp_path / "MNIST" / "raw", train, (test[0], np.array([7, 2, 10, 0])))
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte.*label 10 out of range"):
        load_mnist("test", tmp_path)


def _truncated_gz(data):
    compressed = gzip.compress(data)
    return compressed[: len(compressed) // 2]


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (_truncated_gz, r"t10k-images-idx3-ubyte\.gz: not a complete gzip file \(EOFError"),
        (lambda data: gzip.compress(data[:-100]), r"truncated: the header gives sizes \(4, 28, 28\)"),
        (lambda data: b"<html>404 Not Found</html>\n", r"t10k-images-idx3-ubyte\.gz: not a complete gzip"),
    ],
    ids=["truncated-gz", "gz-of-truncated-content", "text-file"],
)
def test_damaged_gz_files_name_the_file_and_what_was_expected(tmp_path, corrupt, match):
    raw = tmp_path / "MNIST" / "raw"
    contents = _write_splits(raw, *_small_splits())
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(corrupt(contents["t10k-images-idx3-ubyte"]))
    with pytest.raises(DataFileError, match=match) as info:
        load_mnist("test", tmp_path)
    message = str(info.value)
    assert str(raw / "t10k-images-idx3-ubyte.gz") in message and "expected" in message


def test_uncompressed_text_file_is_rejected_by_its_magic_number(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_splits(raw, *_small_splits(), compress=False)
    (raw / "train-images-idx3-ubyte").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(DataFileError) as info:
        load_mnist("train", tmp_path)
    message = str(info.value)
    assert str(raw / "train-images-idx3-ubyte") in message and "magic number 0x76657273" in message
    assert "expected an IDX file of unsigned bytes with 3 dimension(s), magic number 0x00000803" in message


def test_cache_is_keyed_on_content_not_modification_time(tmp_path):
    """A damaged file restored with ``cp -p`` (old modification time) is read again, and a damaged file
    with an old modification time is not hidden by a good cached copy."""
    raw, backup = tmp_path / "MNIST" / "raw", tmp_path / "backup"
    contents = _write_splits(raw, *_small_splits())
    backup.mkdir()
    good = raw / "t10k-labels-idx1-ubyte.gz"
    shutil.copy2(good, backup / good.name)
    old = good.stat().st_mtime_ns - 10**10
    os.utime(backup / good.name, ns=(old, old))

    assert load_mnist("test", tmp_path)[1].tolist() == [7, 2, 1, 0]
    good.write_bytes(gzip.compress(contents["t10k-labels-idx1-ubyte"][:-1]))
    os.utime(good, ns=(old, old))  # damaged, and older than the cached copy
    with pytest.raises(DataFileError, match="decompressed just now from") as info:
        load_mnist("test", tmp_path)
    assert str(good) in str(info.value) and "truncated" in str(info.value)
    with pytest.raises(DataFileError, match="a cached copy made earlier from") as info:
        load_mnist("test", tmp_path)
    assert str(good) in str(info.value) and "size and md5" in str(info.value)

    shutil.copy2(backup / good.name, good)  # cp -p: the restored file keeps its old modification time
    assert good.stat().st_mtime_ns == old
    assert load_mnist("test", tmp_path)[1].tolist() == [7, 2, 1, 0]


def test_missing_files_are_listed_with_the_folders_and_the_download_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "MNIST" / "raw"
    _write_splits(raw, *_small_splits())
    (raw / "train-images-idx3-ubyte.gz").unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test", tmp_path)
    message = str(info.value)
    assert (
        "missing train-images-idx3-ubyte (or train-images-idx3-ubyte.gz), t10k-labels-idx1-ubyte" in message
    )
    assert "train-labels" not in message and "t10k-images" not in message
    assert str(raw) in message and str(tmp_path / "cache" / "data" / "MNIST" / "raw") in message
    assert "download=True" in message and "--download" in message


def _serve_mnist(local_server, monkeypatch, dataset_class, contents, md5s=None):
    """Serve gzipped ``contents`` as ``dataset_class``'s mirror, with their md5s (or ``md5s``)."""
    resources = []
    for name, data in contents.items():
        compressed = gzip.compress(data)
        local_server.add(f"{dataset_class.__name__}/{name}.gz", compressed)
        resources.append((f"{name}.gz", (md5s or {}).get(name, hashlib.md5(compressed).hexdigest())))
    monkeypatch.setattr(dataset_class, "mirrors", [f"{local_server.url}{dataset_class.__name__}/"])
    monkeypatch.setattr(dataset_class, "resources", resources)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_download_fetches_checks_and_reuses_the_files(local_server, tmp_path, monkeypatch, dataset):
    (train_images, train_labels), test = _small_splits()
    contents = _write_splits(tmp_path / "source", (train_images, train_labels), test)
    dataset_class = DATASETS[dataset]
    _serve_mnist(local_server, monkeypatch, dataset_class, contents)
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist("train", root, dataset=dataset)
    images, labels = load_mnist(
        "train", root, validation_size=0, flatten=False, dataset=dataset, download=True
    )
    assert labels.tolist() == train_labels.tolist()
    assert torch.equal(images[:, 0] * 255, torch.as_tensor(train_images, dtype=torch.float32))
    raw = root / dataset_class.__name__ / "raw"
    assert sorted(path.name for path in raw.iterdir()) == sorted(f"{name}.gz" for name in IDX_FILES)
    requests = len(local_server.requests)
    assert load_mnist("test", root, dataset=dataset, download=True)[1].tolist() == test[1].tolist()
    assert len(local_server.requests) == requests  # found, not downloaded again


@pytest.mark.parametrize("damage", ["checksum", "truncated"])
def test_failed_download_is_a_clear_error_and_keeps_nothing(local_server, tmp_path, monkeypatch, damage):
    contents = _write_splits(tmp_path / "source", *_small_splits())
    md5s = {"t10k-images-idx3-ubyte": "0123456789abcdef0123456789abcdef"} if damage == "checksum" else None
    _serve_mnist(local_server, monkeypatch, torchvision.datasets.MNIST, contents, md5s)
    if damage == "truncated":
        local_server.truncate("MNIST/t10k-images-idx3-ubyte.gz")
    root = tmp_path / "root"
    with pytest.raises(DownloadError) as info:
        load_mnist("test", root, download=True)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "truncated or corrupted" in message
    assert f"{local_server.url}MNIST/t10k-images-idx3-ubyte.gz" in message
    if damage == "checksum":
        assert "expected md5 0123456789abcdef0123456789abcdef" in message
    raw = root / "MNIST" / "raw"
    assert "t10k-images-idx3-ubyte.gz" not in [path.name for path in raw.iterdir()]
    assert not [path for path in raw.iterdir() if path.name.startswith(".")], "partial files left behind"


def test_download_into_the_cache_when_the_root_is_read_only(local_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    contents = _write_splits(tmp_path / "source", *_small_splits())
    _serve_mnist(local_server, monkeypatch, torchvision.datasets.MNIST, contents)
    root = tmp_path / "read-only"
    _write_splits(root / "MNIST" / "raw", *_small_splits())
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    for folder in (root / "MNIST" / "raw", root / "MNIST", root):
        folder.chmod(0o555)
    try:
        assert load_mnist("test", root, download=True)[1].tolist() == [7, 2, 1, 0]
        assert sorted(path.name for path in (root / "MNIST" / "raw").iterdir()) == [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ]
        downloaded = tmp_path / "cache" / "data" / "MNIST" / "raw"
        assert [path.name for path in downloaded.iterdir()] == ["train-images-idx3-ubyte.gz"]
        assert set(local_server.requests) == {"/MNIST/train-images-idx3-ubyte.gz"}
        assert len(load_mnist("train", root, validation_size=0)[1]) == 6  # found there next time
    finally:
        for folder in (root, root / "MNIST", root / "MNIST" / "raw"):
            folder.chmod(0o755)


@pytest.mark.data
def test_download_of_the_real_files_with_torchvision_md5s(
    real_data_root, local_server, tmp_path, monkeypatch
):
    """The official .gz files of the shared data pass torchvision's own md5s when downloaded; the
    re-packed training images (whose md5 differs) are copied in place instead."""
    real = real_data_root / "MNIST" / "raw"
    for name in IDX_FILES[1:]:
        local_server.add(f"mnist/{name}.gz", (real / f"{name}.gz").read_bytes())
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"{local_server.url}mnist/"])
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(real / "train-images-idx3-ubyte.gz", raw / "train-images-idx3-ubyte.gz")
    images, labels = load_mnist("test", tmp_path, download=True)
    assert images.shape == (10000, 784) and labels.bincount().tolist() == TEST_COUNTS
    assert sorted(path.name for path in raw.iterdir()) == sorted(f"{name}.gz" for name in IDX_FILES)
