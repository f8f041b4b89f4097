import hashlib

import numpy as np
import pytest
import scipy.io
import torch
import torchvision

from pyro_partial.data.download import DownloadError
from pyro_partial.data.integrity import DataFileError
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


def test_missing_file_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="PYRO_PARTIAL_DATA") as info:
        load_svhn("test", tmp_path / "root")
    message = str(info.value)
    assert "SVHN not found: missing test_32x32.mat" in message
    assert str(tmp_path / "root" / "SVHN") in message and str(tmp_path / "cache" / "data" / "SVHN") in message
    assert "download=True" in message and "--download" in message
    assert torchvision.datasets.SVHN.split_list["test"][0] in message


def _serve_svhn(local_server, monkeypatch, tmp_path, split, images, digits, md5=None):
    source = tmp_path / "source" / f"{split}_32x32.mat"
    _write_svhn(source, images, digits)
    data = source.read_bytes()
    url = local_server.add(f"svhn/{source.name}", data)
    monkeypatch.setitem(
        torchvision.datasets.SVHN.split_list, split, [url, source.name, md5 or hashlib.md5(data).hexdigest()]
    )
    return url


def test_download_fetches_and_checks_the_file(local_server, tmp_path, monkeypatch):
    images, digits = _random_svhn(7, seed=3)
    _serve_svhn(local_server, monkeypatch, tmp_path, "test", images, digits)
    loaded, labels = load_svhn("test", tmp_path / "root", download=True)
    assert labels.tolist() == digits.tolist() and torch.equal(loaded * 255, torch.from_numpy(images).float())
    assert sorted(path.name for path in (tmp_path / "root" / "SVHN").iterdir()) == ["test_32x32.mat"]
    requests = len(local_server.requests)
    assert load_svhn("test", tmp_path / "root", download=True)[1].tolist() == digits.tolist()
    assert len(local_server.requests) == requests


@pytest.mark.parametrize("damage", ["checksum", "truncated"])
def test_failed_download_is_a_clear_error_and_keeps_nothing(local_server, tmp_path, monkeypatch, damage):
    images, digits = _random_svhn(7, seed=3)
    md5 = "f" * 32 if damage == "checksum" else None
    url = _serve_svhn(local_server, monkeypatch, tmp_path, "train", images, digits, md5)
    if damage == "truncated":
        local_server.truncate("svhn/train_32x32.mat")
    with pytest.raises(DownloadError, match="truncated or corrupted") as info:
        load_svhn("validation", tmp_path / "root", validation_size=2, download=True)
    assert url in str(info.value) and "train_32x32.mat" in str(info.value)
    assert list((tmp_path / "root" / "SVHN").iterdir()) == []


def test_truncated_file_names_the_file(tmp_path):
    images, digits = _random_svhn(4)
    path = tmp_path / "SVHN" / "test_32x32.mat"
    _write_svhn(path, images, digits)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFileError, match="not a readable MATLAB file") as info:
        load_svhn("test", tmp_path)
    assert str(info.value).startswith(str(path)) and "expected a MATLAB v5 file with uint8 'X'" in str(
        info.value
    )


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
