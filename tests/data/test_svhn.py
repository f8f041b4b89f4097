import numpy as np
import pytest
import scipy.io
import torch
import torchvision

from pyro_partial.data.svhn import load_svhn, read_svhn_mat, svhn_file


def _write_svhn(path, images, digits, label_dtype=np.uint8):
    """Write images ``(N, 3, 32, 32)`` and digits 0..9 in the distributed layout (10 stands for 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # (height, width, channel, N)
    y = np.where(digits == 0, 10, digits).astype(label_dtype)[:, None]
    scipy.io.savemat(path, {"X": x, "y": y})


def _random_svhn(n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    digits = np.arange(n) % 10
    return images, digits


@pytest.mark.parametrize("label_dtype", [np.uint8, np.float64])
def test_reads_the_distributed_layout(tmp_path, label_dtype):
    images, digits = _random_svhn(12)
    images[0] = 0
    images[0, 1, 0, :] = 255  # image 0: top row, green channel only
    _write_svhn(tmp_path / "SVHN" / "train_32x32.mat", images, digits, label_dtype)
    loaded, labels = load_svhn("train", tmp_path)
    assert loaded.shape == (12, 3, 32, 32) and loaded.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert labels.tolist() == digits.tolist()
    assert 0 in labels.tolist() and 10 not in labels.tolist()
    assert torch.equal(loaded * 255, torch.from_numpy(images).float())
    assert loaded[0, 1, 0].eq(1).all() and loaded[0].sum() == 32


def test_agrees_with_torchvision_reader(tmp_path, monkeypatch):
    images, digits = _random_svhn(10, seed=1)
    _write_svhn(tmp_path / "SVHN" / "test_32x32.mat", images, digits)
    # torchvision's reader accepts only the full distributed file (md5); skip that check for a small one.
    monkeypatch.setattr(torchvision.datasets.SVHN, "_check_integrity", lambda self: True)
    reference = torchvision.datasets.SVHN(tmp_path / "SVHN", split="test")
    ours, labels = read_svhn_mat(svhn_file("test", tmp_path))
    assert torch.equal(ours, torch.from_numpy(reference.data))
    assert torch.equal(labels, torch.from_numpy(reference.labels))


def test_validation_and_extra_splits(tmp_path):
    images, digits = _random_svhn(20)
    _write_svhn(tmp_path / "SVHN" / "train_32x32.mat", images, digits)
    extra_images, extra_digits = _random_svhn(5, seed=2)
    _write_svhn(tmp_path / "SVHN" / "extra_32x32.mat", extra_images, extra_digits)
    train, train_labels = load_svhn("train", tmp_path, validation_size=6)
    val, val_labels = load_svhn("validation", tmp_path, validation_size=6)
    assert train_labels.tolist() == digits[:14].tolist() and val_labels.tolist() == digits[14:].tolist()
    assert torch.equal(val * 255, torch.from_numpy(images[14:]).float())
    extra, extra_labels = load_svhn("extra", tmp_path)
    assert extra.shape == (5, 3, 32, 32) and extra_labels.tolist() == extra_digits.tolist()


def test_data_root_from_the_environment_variable(tmp_path, monkeypatch):
    images, digits = _random_svhn(3)
    _write_svhn(tmp_path / "SVHN" / "test_32x32.mat", images, digits)
    monkeypatch.setenv("PYRO_PARTIAL_DATA", str(tmp_path))
    assert load_svhn("test")[1].tolist() == digits.tolist()


def test_missing_file_raises_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="PYRO_PARTIAL_DATA") as info:
        load_svhn("test", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "SVHN" / "test_32x32.mat") in message and "download=True" in message


@pytest.mark.parametrize(
    "contents, match",
    [
        ({"X": np.zeros((32, 32, 3, 2), np.uint8)}, "needs the variables"),
        ({"X": np.zeros((32, 32, 2), np.uint8), "y": np.ones((2, 1))}, "'X' must be uint8"),
        ({"X": np.zeros((32, 32, 3, 2), np.float64), "y": np.ones((2, 1))}, "'X' must be uint8"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))}, "'y' must have shape"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [1]])}, "integers 1..10"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1.5], [1]])}, "integers 1..10"),
    ],
)
def test_wrong_layout_raises(tmp_path, contents, match):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, contents)
    with pytest.raises(ValueError, match=match):
        read_svhn_mat(path)


def test_bad_split_raises(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_svhn("valid", tmp_path)
