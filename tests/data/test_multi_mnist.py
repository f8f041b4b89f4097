"""Multi-MNIST generator: exact balance, determinism, padding, geometry against the spatial transformer's
convention, recovery of the digits with read_patch, argument checks, and the real-MNIST loader."""

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader

from pyro_partial.data import MultiMNIST, load_mnist, load_multi_mnist, make_multi_mnist
from pyro_partial.nn import read_patch, write_patch


def _blobs(num_images=60, seed=0):
    """Smooth stand-ins for MNIST digits: 28 x 28 Gaussian blobs in [0, 1], zero outside the central
    20 x 20 pixels (as MNIST's digits are), labels ``i mod 10``."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.arange(28.0)
    centres = 11 + 6 * torch.rand(num_images, 2, generator=generator)
    widths = 2.0 + 2.0 * torch.rand(num_images, 1, 1, generator=generator)
    squared = (grid[:, None] - centres[:, 0, None, None]) ** 2 + (
        grid[None, :] - centres[:, 1, None, None]
    ) ** 2
    images = torch.exp(-squared / (2 * widths**2))
    images[:, :4] = images[:, -4:] = images[:, :, :4] = images[:, :, -4:] = 0
    return images, torch.arange(num_images) % 10


def _isolated(data, n, k):
    """Whether the window of digit k of canvas n intersects no other digit's window."""
    s, x, y = data.wheres[n, k].tolist()
    for j in range(int(data.counts[n])):
        t, u, v = data.wheres[n, j].tolist()
        if j != k and abs(x - u) < s + t and abs(y - v) < s + t:
            return False
    return True


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


@pytest.fixture(scope="module")
def data(blobs):
    return make_multi_mnist(*blobs, 40, seed=0)


def test_fields_shapes_and_types(data):
    assert (len(data), data.canvas_size, data.max_digits) == (40, 50, 3)
    assert data.canvases.shape == (40, 50, 50) and data.canvases.dtype == torch.float32
    assert data.counts.shape == (40,) and data.counts.dtype == torch.int64
    assert data.digits.shape == data.source_index.shape == (40, 3)
    assert data.digits.dtype == data.source_index.dtype == torch.int64
    assert data.wheres.shape == (40, 3, 3) and data.wheres.dtype == torch.float32
    assert data.patches.shape == (40, 3, 28, 28) and data.patches.dtype == torch.float32
    assert data.canvases.min() >= 0 and data.canvases.max() <= 1


@pytest.mark.parametrize("num_canvases, max_digits", [(40, 3), (42, 3), (37, 5)])
def test_counts_and_classes_are_exactly_balanced(blobs, num_canvases, max_digits):
    data = make_multi_mnist(*blobs, num_canvases, max_digits=max_digits, seed=1)
    per_count = data.counts.bincount(minlength=max_digits + 1)
    quotient, remainder = divmod(num_canvases, max_digits + 1)
    assert (
        sorted(per_count.tolist()) == [quotient] * (max_digits + 1 - remainder) + [quotient + 1] * remainder
    )
    placed = data.digits[data.digits >= 0]
    assert len(placed) == data.counts.sum()
    quotient, remainder = divmod(len(placed), 10)
    assert (
        sorted(placed.bincount(minlength=10).tolist())
        == [quotient] * (10 - remainder) + [quotient + 1] * remainder
    )
    assert not torch.equal(data.counts, torch.arange(num_canvases) % (max_digits + 1)), (
        "counts are not shuffled"
    )

    # Cycling 0..9 unshuffled would give every canvas of two or more digits cyclically consecutive classes.
    def cyclically_consecutive(classes):
        return any(
            sorted(((classes - start) % 10).tolist()) == list(range(len(classes))) for start in classes
        )

    several = (data.counts >= 2).nonzero()[:, 0]
    consecutive = [cyclically_consecutive(data.digits[n, : data.counts[n]]) for n in several]
    assert not all(consecutive), "classes are not shuffled"


def test_same_seed_gives_identical_tensors_and_another_seed_different_ones(blobs, data):
    again, other = make_multi_mnist(*blobs, 40, seed=0), make_multi_mnist(*blobs, 40, seed=1)
    for name in ("canvases", "counts", "digits", "wheres", "patches", "source_index"):
        assert torch.equal(getattr(again, name), getattr(data, name)), name
    for name in ("canvases", "counts", "wheres", "source_index"):
        assert not torch.equal(getattr(other, name), getattr(data, name)), name


def test_padding_and_the_placed_digits_match_their_sources(blobs, data):
    images, labels = blobs
    for n in range(len(data)):
        count = int(data.counts[n])
        rows = data.source_index[n, :count]
        assert (rows >= 0).all() and torch.equal(data.digits[n, :count], labels[rows])
        assert torch.equal(data.patches[n, :count], images[rows])
        assert (data.digits[n, count:] == -1).all() and (data.source_index[n, count:] == -1).all()
        assert (data.wheres[n, count:] == 0).all() and (data.patches[n, count:] == 0).all()


def test_canvas_is_the_clamped_sum_of_the_digits_written_at_their_wheres(data):
    for n in range(len(data)):
        count = int(data.counts[n])
        expected = write_patch(data.patches[n, :count], data.wheres[n, :count], 50).sum(0).clamp(0, 1)
        torch.testing.assert_close(data.canvases[n], expected, atol=1e-6, rtol=0)
    assert (data.canvases[data.counts == 0] == 0).all()


def test_digits_have_the_drawn_sizes_lie_inside_the_canvas_and_keep_their_distance(blobs):
    data = make_multi_mnist(*blobs, 60, digit_sizes=(18.0, 26.0), min_distance=12.0, seed=3)
    active = data.digits >= 0
    scale, x, y = data.wheres[active].unbind(-1)
    assert (scale * 50 >= 18 - 1e-4).all() and (scale * 50 <= 26 + 1e-4).all()
    assert (x.abs() <= 1 - scale + 1e-6).all() and (y.abs() <= 1 - scale + 1e-6).all()
    centres = (torch.arange(50) + 0.5) / 25 - 1  # pixel centres in normalised coordinates
    for n in range(len(data)):
        count = int(data.counts[n])
        s, x, y = data.wheres[n, :count].unbind(-1)
        assert (x[1:] >= x[:-1]).all(), "digits are ordered left to right"
        distance = torch.cdist(data.wheres[n, :count, 1:], data.wheres[n, :count, 1:]) * 25
        assert (distance + 1e3 * torch.eye(count) >= 12 - 1e-3).all()
        # A pixel more than one pixel (2/50) outside every window stays empty.
        near_x = (centres[None, :] - x[:, None]).abs() < s[:, None] + 2 / 50
        near_y = (centres[None, :] - y[:, None]).abs() < s[:, None] + 2 / 50
        near = (near_y[:, :, None] & near_x[:, None, :]).any(0)
        assert (data.canvases[n][~near] == 0).all()


def test_read_patch_recovers_digits_whose_windows_overlap_no_other(data):
    checked = 0
    for n in range(len(data)):
        for k in range(int(data.counts[n])):
            if _isolated(data, n, k):
                recovered = read_patch(data.canvases[n], data.wheres[n, k], 28)
                # Two bilinear resamplings (down to 20..28 pixels and back) blur the narrowest blobs'
                # peaks by up to 0.11; elsewhere the error is tiny.
                error = (recovered - data.patches[n, k]).abs()
                assert error.max() < 0.15 and error.mean() < 0.01
                checked += 1
    assert checked >= 5


def test_dataset_items_and_batches(data):
    canvas, count, digits, wheres, patches = data[3]
    assert canvas.shape == (50, 50) and count.shape == () and digits.shape == (3,)
    assert wheres.shape == (3, 3) and patches.shape == (3, 28, 28)
    batch = next(iter(DataLoader(data, batch_size=8)))
    assert [tuple(t.shape) for t in batch] == [(8, 50, 50), (8,), (8, 3), (8, 3, 3), (8, 3, 28, 28)]
    assert torch.equal(batch[0], data.canvases[:8])


def test_a_single_canvas_is_empty(blobs):
    data = make_multi_mnist(*blobs, 1, seed=0)
    assert data.counts.tolist() == [0] and (data.canvases == 0).all() and (data.digits == -1).all()


def test_fields_with_inconsistent_shapes_are_rejected(data):
    with pytest.raises(ValueError, match=r"wheres must have shape \(40, 3, 3\)"):
        MultiMNIST(
            data.canvases, data.counts, data.digits, data.wheres[:, :2], data.patches, data.source_index
        )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(images=torch.rand(60, 784)), r"images must be a float tensor of shape \(M, height, width\)"),
        (dict(images=torch.rand(60, 28, 28) * 2), r"images must lie in \[0, 1\]"),
        (dict(labels=torch.arange(59) % 10), r"labels must be an integer tensor of shape \(60,\)"),
        (dict(labels=(torch.arange(60) % 10).float()), r"labels must be an integer tensor"),
        (dict(labels=torch.arange(60) % 9), r"include every class; missing \[9\]"),
        (dict(num_canvases=0), r"num_canvases must be a positive int"),
        (dict(max_digits=0), r"max_digits must be a positive int"),
        (dict(canvas_size=2.5), r"canvas_size must be a positive int"),
        (
            dict(digit_sizes=(20, 60)),
            r"digit_sizes must be \(low, high\) with 0 < low <= high <= canvas_size",
        ),
        (dict(digit_sizes=(0, 20)), r"digit_sizes must be"),
        (dict(min_distance=-1.0), r"min_distance must be >= 0"),
        (dict(num_canvases=4, digit_sizes=(28, 28), min_distance=40.0), r"could not place 3 digits"),
    ],
)
def test_bad_arguments_raise_clear_errors(blobs, change, message):
    arguments = dict(images=blobs[0], labels=blobs[1], num_canvases=8, seed=0) | change
    images, labels, num_canvases = (arguments.pop(name) for name in ("images", "labels", "num_canvases"))
    with pytest.raises(ValueError, match=message):
        make_multi_mnist(images, labels, num_canvases, **arguments)


@pytest.mark.data
def test_real_mnist_canvases_from_the_test_split(real_data_root):
    images, labels = load_mnist("test", real_data_root, flatten=False)
    data = load_multi_mnist("test", real_data_root, num_canvases=24, seed=0)
    assert data.counts.bincount().tolist() == [6, 6, 6, 6]
    # 36 placed digits: six classes occur four times, four classes three times.
    assert sorted(data.digits[data.digits >= 0].bincount().tolist()) == [3] * 4 + [4] * 6
    placed = data.source_index >= 0
    assert torch.equal(data.digits[placed], labels[data.source_index[placed]])
    assert torch.equal(data.patches[placed], images[data.source_index[placed], 0])
    assert data.canvases.max() == 1 and data.canvases.min() == 0
    isolated = [(n, k) for n in range(24) for k in range(int(data.counts[n])) if _isolated(data, n, k)]
    assert isolated
    for n, k in isolated:
        recovered = read_patch(data.canvases[n], data.wheres[n, k], 28)
        assert (recovered - data.patches[n, k]).abs().mean() < 0.08
        assert torch.corrcoef(torch.stack([recovered.flatten(), data.patches[n, k].flatten()]))[0, 1] > 0.9
    assert not torch.equal(
        load_multi_mnist("test", real_data_root, num_canvases=24, seed=1).canvases, data.canvases
    )


def test_digits_of_different_canvases_are_independent_draws(blobs):
    """Each digit is a uniform draw from the images of its class: over many digits every image of a
    class appears (60 images, 6 per class, about 80 draws per class)."""
    data = make_multi_mnist(*blobs, 533, seed=4)
    used = set(data.source_index[data.source_index >= 0].tolist())
    assert used == set(range(60))


def test_download_reaches_the_mnist_loader(local_server, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8), np.arange(20) % 10
    files = {
        "images-idx3-ubyte": struct.pack(">4i", 2051, 20, 28, 28) + images.tobytes(),
        "labels-idx1-ubyte": struct.pack(">2i", 2049, 20) + labels.astype(np.uint8).tobytes(),
    }
    resources = []
    for prefix in ("train", "t10k"):
        for suffix, data in files.items():
            compressed = gzip.compress(data)
            local_server.add(f"mnist/{prefix}-{suffix}.gz", compressed)
            resources.append((f"{prefix}-{suffix}.gz", hashlib.md5(compressed).hexdigest()))
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"{local_server.url}mnist/"])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_multi_mnist("test", tmp_path, num_canvases=4)
    data = load_multi_mnist("test", tmp_path, num_canvases=4, download=True)
    assert len(data) == 4 and set(data.digits[data.digits >= 0].tolist()) <= set(range(10))
