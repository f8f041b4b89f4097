"""dSprites: npz loader on a small file in the official format, and the procedural re-render.

The re-render is checked against facts known independently of the code: the geometry of the official
frames (``dsprites.gif``, the README of the shared data) and the exact supersampled coverage.
"""

import hashlib
import math
import struct
import zipfile

import numpy as np
import pytest
import torch

from pyro_partial.data import dsprites
from pyro_partial.data.download import DownloadError
from pyro_partial.data.dsprites import NPZ_NAME, DSprites, latent_values, load_gif_traversals
from pyro_partial.data.dsprites_render import THRESHOLD, coverage
from pyro_partial.data.integrity import DataFileError


@pytest.fixture(scope="module")
def procedural():
    return DSprites(source="procedural")


def render_one(dataset, shape, scale, orientation, pos_x, pos_y):
    factors = np.array([[shape, scale, orientation, pos_x, pos_y]])
    return dataset.observations_from_factors(factors, np.random.default_rng(0))[0, 0].numpy() > 0.5


def test_factor_grid(procedural):
    assert procedural.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert procedural.factor_sizes == (3, 6, 40, 32, 32)
    assert len(procedural) == 737280
    np.testing.assert_allclose(procedural.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(procedural.factor_values[2][[0, -1]], [0.0, 2 * math.pi])
    # Mixed radix, posY fastest: image 1 moves posY, image 32 moves posX, image 32*32 orientation.
    assert procedural[1][1].tolist() == [0, 0, 0, 0, 1]
    assert procedural[32][1].tolist() == [0, 0, 0, 1, 0]
    assert procedural[32 * 32 * 40 * 6][1].tolist() == [1, 0, 0, 0, 0]
    assert procedural[-1][1].tolist() == [2, 5, 39, 31, 31]


def test_square_is_exact_on_the_pixel_grid(procedural):
    # Side 20 * scale centred on pixel coordinate 16: pixels [16 - 10s, 16 + 10s) on both axes.
    for scale_index, scale in enumerate(latent_values()[2]):
        image = render_one(procedural, 0, scale_index, 0, 0, 0)
        half = round(10 * scale)
        expected = np.zeros((64, 64), dtype=bool)
        expected[16 - half : 16 + half, 16 - half : 16 + half] = True
        np.testing.assert_array_equal(image, expected)


def test_positions_move_the_centre(procedural):
    # Sprite centre at 16 + 32 * pos: centre of mass of a square at scale 1 (posX -> columns).
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    for index in (0, 7, 20, 31):
        image = render_one(procedural, 0, 5, 0, index, 31 - index)
        assert abs(cols[image].mean() - (16 + 32 * index / 31)) < 0.5
        assert abs(rows[image].mean() - (16 + 32 * (31 - index) / 31)) < 0.5


def test_ellipse_axes_and_counter_clockwise_rotation(procedural):
    image = render_one(procedural, 1, 5, 0, 0, 0)
    rows, cols = np.nonzero(image)
    assert cols.max() - cols.min() + 1 > rows.max() - rows.min() + 1  # long axis along x
    assert abs(image.sum() - math.pi * 13 * 7.5) < 0.1 * math.pi * 13 * 7.5
    # Turned by 4 * 2pi/39 (~37 degrees) counter-clockwise on screen (y down): the long axis rises to the
    # right, so the upper-right quadrant holds more pixels than the upper-left one.
    turned = render_one(procedural, 1, 5, 4, 0, 0)
    assert turned[:16, 16:].sum() > turned[:16, :16].sum() + 20
    np.testing.assert_array_equal(render_one(procedural, 1, 5, 39, 0, 0), image)  # 2 pi == 0


def test_heart_measured_geometry(procedural):
    # Measured on the official frames: bounding box 20 x 17 px at scale 1, area about 222 px.
    image = render_one(procedural, 2, 5, 0, 0, 0)
    rows, cols = np.nonzero(image)
    assert (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1) == (20, 17)
    assert abs(int(image.sum()) - 222) <= 8
    assert image[rows.min() : rows.min() + 3, 15:17].sum() == 0  # notch between the lobes at the top


def test_cached_sprites_equal_direct_rendering(procedural):
    # Pasting cached sprites at whole pixels equals exact supersampling at the centre rounded to 1/8 px.
    rng = np.random.default_rng(1)
    factors = procedural.sample_factors(60, rng)
    images = procedural.observations_from_factors(factors, rng)[:, 0].numpy() > 0.5
    values = procedural.factor_values
    for image, (shape, scale, orientation, pos_x, pos_y) in zip(images, factors, strict=True):
        centre_x, centre_y = (
            np.rint(8 * (16 + 32 * values[3 + k][p])) / 8 for k, p in enumerate((pos_x, pos_y))
        )
        expected = coverage(shape, values[1][scale], values[2][orientation], centre_x, centre_y) >= THRESHOLD
        np.testing.assert_array_equal(image, expected)


def test_mean_iou_against_real_frames(procedural, real_data_root):
    frames, factors, labels = load_gif_traversals(real_data_root)
    assert frames.shape == (320, 64, 64) and factors.shape == (320, 5)
    rendered = procedural.observations_from_factors(factors, np.random.default_rng(0))[:, 0].numpy() > 0.5
    iou = (rendered & frames).sum(axis=(1, 2)) / (rendered | frames).sum(axis=(1, 2))
    shapes = np.array([label.split("/")[0] for label in labels])
    for shape in ("square", "ellipse", "heart"):
        assert iou[shapes == shape].mean() >= 0.95, shape
    assert iou.min() >= 0.8


def test_dataset_item_and_loader(procedural):
    image, factors = procedural[12345]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert set(image.unique().tolist()) <= {0.0, 1.0}
    assert factors.dtype == torch.int64
    assert procedural.index_of(factors[None].numpy()).tolist() == [12345]
    subset = torch.utils.data.Subset(procedural, range(0, 737280, 9001))
    batch, batch_factors = next(iter(torch.utils.data.DataLoader(subset, batch_size=16)))
    assert batch.shape == (16, 1, 64, 64) and batch_factors.shape == (16, 5)


def test_bad_factors_raise(procedural):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        procedural.observations_from_factors(np.zeros((3, 6), dtype=np.int64), rng)
    with pytest.raises(ValueError, match="out of range"):
        procedural.observations_from_factors(np.array([[3, 0, 0, 0, 0]]), rng)
    with pytest.raises(ValueError, match="source"):
        DSprites(source="gif")


def write_npz(directory, sizes, images=None, shuffle=False):
    """A file in the official format (same keys and dtypes, pickled metadata) over a reduced grid."""
    num = math.prod(sizes)
    classes = np.stack(np.unravel_index(np.arange(num), sizes), axis=1).astype(np.int64)
    if shuffle:
        classes = classes[::-1].copy()
    values = np.stack([latent_values()[f][classes[:, f]] for f in range(6)], axis=1)
    if images is None:
        images = np.random.default_rng(0).integers(0, 2, size=(num, 64, 64), dtype=np.uint8)
    metadata = np.array({"latents_sizes": np.array(sizes), "title": "dSprites"}, dtype=object)
    (directory / "dsprites").mkdir(exist_ok=True)
    np.savez_compressed(
        directory / "dsprites" / NPZ_NAME,
        imgs=images,
        latents_values=values,
        latents_classes=classes,
        metadata=metadata,
    )
    return images, values


def test_npz_loader_on_reduced_grid(tmp_path):
    sizes = (1, 3, 2, 3, 4, 5)
    images, values = write_npz(tmp_path, sizes)
    dataset = DSprites(source="npz", root=tmp_path)
    assert dataset.factor_sizes == sizes[1:] and len(dataset) == 360
    np.testing.assert_allclose(dataset.factor_values[1], latent_values()[2][:2])
    np.testing.assert_allclose(dataset.factor_values[3], latent_values()[4][:4])
    for index in (0, 1, 77, 359):
        image, factors = dataset[index]
        np.testing.assert_array_equal(image[0].numpy(), images[index])
        np.testing.assert_array_equal(factors.numpy(), np.unravel_index(index, sizes[1:]))
    factors = dataset.sample_factors(50, np.random.default_rng(3))
    observed = dataset.observations_from_factors(factors, np.random.default_rng(3))
    expected = images[np.ravel_multi_index(factors.T, sizes[1:])]
    np.testing.assert_array_equal(observed[:, 0].numpy(), expected)


def test_npz_loader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="PYRO_PARTIAL_DATA"):
        DSprites(source="npz", root=tmp_path)
    write_npz(tmp_path, (1, 3, 2, 2, 2, 2), shuffle=True)
    with pytest.raises(ValueError, match="mixed-radix"):
        DSprites(source="npz", root=tmp_path)
    write_npz(tmp_path, (1, 3, 2, 2, 2, 2), images=np.full((48, 64, 64), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="binary"):
        DSprites(source="npz", root=tmp_path)


def test_truncated_npz_names_the_file(tmp_path):
    write_npz(tmp_path, (1, 3, 2, 2, 2, 2))
    path = tmp_path / "dsprites" / NPZ_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFileError) as info:
        DSprites(source="npz", root=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "damaged or incomplete zip data" in message
    assert "expected a dSprites npz" in message


def test_damaged_images_member_names_the_member(tmp_path):
    write_npz(tmp_path, (1, 3, 2, 2, 2, 2))
    path = tmp_path / "dsprites" / NPZ_NAME
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("imgs.npy")
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError) as info:
        DSprites(source="npz", root=tmp_path)
    assert str(info.value).startswith(f"{path}, member imgs.npy: ")


def test_missing_npz_names_the_folders_the_download_flag_and_the_procedural_source(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        DSprites(source="npz", root=tmp_path / "root")
    message = str(info.value)
    assert (
        f"dSprites not found: missing {NPZ_NAME}" in message
        and str(tmp_path / "root" / "dsprites") in message
    )
    assert str(tmp_path / "cache" / "data" / "dsprites") in message and dsprites.NPZ_URLS[0] in message
    assert "download=True" in message and "--download" in message and "source='procedural'" in message


def test_npz_download_is_checked(local_server, tmp_path, monkeypatch):
    sizes = (1, 3, 2, 2, 2, 2)
    (tmp_path / "source").mkdir()
    images, _ = write_npz(tmp_path / "source", sizes)
    data = (tmp_path / "source" / "dsprites" / NPZ_NAME).read_bytes()
    monkeypatch.setattr(dsprites, "NPZ_URLS", (local_server.add(NPZ_NAME, data),))
    monkeypatch.setattr(dsprites, "NPZ_MD5", hashlib.md5(data).hexdigest())
    dataset = DSprites(source="npz", root=tmp_path / "root", download=True)
    np.testing.assert_array_equal(dataset[5][0][0].numpy(), images[5])
    monkeypatch.setattr(dsprites, "NPZ_MD5", "0" * 32)
    with pytest.raises(DownloadError, match="expected md5 0{32}"):
        DSprites(source="npz", root=tmp_path / "other", download=True)
    assert list((tmp_path / "other" / "dsprites").iterdir()) == []


@pytest.mark.data
def test_gif_download_is_checked_by_its_format(real_data_root, local_server, tmp_path, monkeypatch):
    gif = (real_data_root / "dsprites" / "dsprites.gif").read_bytes()
    monkeypatch.setattr(dsprites, "GIF_URLS", (local_server.add("dsprites.gif", gif),))
    frames, factors, _ = load_gif_traversals(tmp_path / "root", download=True)
    assert frames.shape == (320, 64, 64) and factors.shape == (320, 5)
    local_server.truncate("dsprites.gif")
    with pytest.raises(DownloadError, match="not a valid file") as info:
        load_gif_traversals(tmp_path / "other", download=True)
    assert "expected a GIF of 320 frames of 64x64 pixels" in str(info.value)
    assert list((tmp_path / "other" / "dsprites").iterdir()) == []
