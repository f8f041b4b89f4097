"""Cropped Yale B: the parser on a tiny archive in the original layout, and counts on the real one."""

import struct
import zipfile

import numpy as np
import pytest
import torch

from pyro_partial.data import yaleb
from pyro_partial.data.download import DownloadError
from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.yaleb import YaleB, parse_member_name, train_test_split


def pgm(width, height, value):
    return f"P5\n{width} {height}\n255\n".encode() + bytes([value]) * (width * height)


# (subject id, azimuth, elevation, grey value) of the lit images in the tiny archive.
FACES = [(1, -130, 20, 10), (1, 0, 0, 20), (1, 5, -10, 30), (3, 0, 0, 40), (3, 5, -10, 50)]


@pytest.fixture
def tiny_root(tmp_path):
    (tmp_path / "yaleb").mkdir()
    with zipfile.ZipFile(tmp_path / "yaleb" / "CroppedYale.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CroppedYale/", b"")
        for subject in (1, 3):
            folder = f"CroppedYale/yaleB{subject:02d}/"
            archive.writestr(folder, b"")
            archive.writestr(f"{folder}yaleB{subject:02d}_P00.info", b"list of files\n")
            archive.writestr(f"{folder}yaleB{subject:02d}_P00_Ambient.pgm", pgm(64, 48, 1))
        archive.writestr("CroppedYale/yaleB03/yaleB03_P00A-130E+20.pgm.bad", pgm(168, 192, 99))
        for subject, azimuth, elevation, value in FACES:
            name = (
                f"CroppedYale/yaleB{subject:02d}/yaleB{subject:02d}_P00A{azimuth:+04d}E{elevation:+03d}.pgm"
            )
            archive.writestr(name, pgm(168, 192, value))
    return tmp_path


def test_parse_member_name():
    assert parse_member_name("CroppedYale/yaleB28/yaleB28_P00A-070E+00.pgm") == (28, -70, 0)
    assert parse_member_name("CroppedYale/yaleB02/yaleB02_P00A+110E+65.pgm") == (2, 110, 65)
    assert parse_member_name("CroppedYale/yaleB02/yaleB02_P00_Ambient.pgm") is None
    assert parse_member_name("CroppedYale/yaleB02/yaleB02_P00A+110E+65.pgm.bad") is None
    assert parse_member_name("CroppedYale/yaleB02/yaleB03_P00A+110E+65.pgm") is None


def test_tiny_archive(tiny_root):
    data = YaleB(root=tiny_root)
    assert len(data) == 5 and data.factor_sizes == (2, 3) and data.observation_shape == (1, 192, 168)
    assert data.subject_id.tolist() == [1, 1, 1, 3, 3] and data.subject.tolist() == [0, 0, 0, 1, 1]
    assert data.azimuth.tolist() == [-130, 0, 5, 0, 5] and data.elevation.tolist() == [20, 0, -10, 0, -10]
    assert data.conditions.tolist() == [[-130, 20], [0, 0], [5, -10]]
    for index, (_, _, _, value) in enumerate(FACES):
        image, factors = data[index]
        assert image.shape == (1, 192, 168) and image.dtype == torch.float32
        torch.testing.assert_close(image, torch.full((1, 192, 168), value / 255))
        assert factors.tolist() == [data.subject[index], data.condition[index]]
    # Subject 3 has no image lit from (-130, 20) (its file is .bad): the nearest light, (0, 0), is used.
    assert data.missing.tolist() == [[1, 0]]
    faces = data.observations_from_factors(np.array([[1, 0], [0, 0], [1, 2]]), np.random.default_rng(0))
    torch.testing.assert_close(faces[:, 0, 0, 0], torch.tensor([40, 10, 50]) / 255)


def test_resize(tiny_root):
    data = YaleB(root=tiny_root, size=(64, 32))
    assert data.observation_shape == (1, 64, 32)
    image, _ = data[3]
    torch.testing.assert_close(image, torch.full((1, 64, 32), 40 / 255))  # constant stays constant


def test_missing_and_malformed_archives(tmp_path, tiny_root):
    with pytest.raises(FileNotFoundError, match="yaleb"):
        YaleB(root=tmp_path / "nowhere")
    with zipfile.ZipFile(tiny_root / "yaleb" / "CroppedYale.zip", "a") as archive:
        archive.writestr("CroppedYale/yaleB05/yaleB05_P00A+000E+00.pgm", pgm(64, 64, 0))
    with pytest.raises(ValueError, match="168x192"):
        YaleB(root=tiny_root)


def test_train_test_split():
    subjects = np.repeat(np.arange(4), [10, 20, 5, 1])
    train, test = train_test_split(subjects, test_fraction=0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(36))
    assert np.bincount(subjects[test], minlength=4).tolist() == [2, 4, 1, 0]
    again, _ = train_test_split(subjects, test_fraction=0.2, seed=0)
    other, _ = train_test_split(subjects, test_fraction=0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(subjects, test_fraction=1.5)


def test_real_archive(real_data_root):
    data = YaleB(root=real_data_root, size=(64, 64))
    assert len(data) == 2414 and data.factor_sizes == (38, 64)
    assert 14 not in data.subject_id and sorted(set(data.subject_id)) == [i for i in range(1, 40) if i != 14]
    assert (data.azimuth.min(), data.azimuth.max()) == (-130, 130)
    assert (data.elevation.min(), data.elevation.max()) == (-40, 90)
    assert len(data.missing) == 18 == 38 * 64 - 2414
    image, factors = data[0]
    assert image.shape == (1, 64, 64) and 0.0 <= image.min() < image.max() <= 1.0
    factors = data.sample_factors(8, np.random.default_rng(0))
    assert data.observations_from_factors(factors, np.random.default_rng(0)).shape == (8, 1, 64, 64)


def _flip_member_byte(archive_path, member):
    """Flip one byte in the middle of the stored (compressed) data of ``member``."""
    with zipfile.ZipFile(archive_path) as archive:
        info = archive.getinfo(member)
    data = bytearray(archive_path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    archive_path.write_bytes(bytes(data))


FACE = "CroppedYale/yaleB01/yaleB01_P00A+005E-10.pgm"


def test_cut_archive_names_the_archive(tiny_root):
    path = tiny_root / "yaleb" / "CroppedYale.zip"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataFileError) as info:
        YaleB(root=tiny_root)
    message = str(info.value)
    assert message.startswith(f"{path}: damaged or incomplete zip data (BadZipFile")
    assert "expected the CroppedYale.zip distribution" in message


def test_bit_flipped_member_names_the_archive_and_the_member(tiny_root):
    path = tiny_root / "yaleb" / "CroppedYale.zip"
    _flip_member_byte(path, FACE)
    with pytest.raises(DataFileError) as info:
        YaleB(root=tiny_root)
    assert str(info.value).startswith(f"{path}, member {FACE}: damaged or incomplete zip data")
    assert info.value.member == FACE


def test_cut_image_member_names_the_member(tmp_path):
    (tmp_path / "yaleb").mkdir()
    with zipfile.ZipFile(tmp_path / "yaleb" / "CroppedYale.zip", "w") as archive:
        archive.writestr(FACE, pgm(168, 192, 7)[:-1000])
    with pytest.raises(DataFileError) as info:
        YaleB(root=tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"{tmp_path / 'yaleb' / 'CroppedYale.zip'}, member {FACE}: not a decodable image"
    )
    assert "expected a 168x192 (W x H) greyscale PGM" in message


def test_missing_archive_names_the_folders_and_the_download_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        YaleB(root=tmp_path / "root")
    message = str(info.value)
    assert (
        "Yale B not found: missing CroppedYale.zip" in message and str(tmp_path / "root" / "yaleb") in message
    )
    assert str(tmp_path / "cache" / "data" / "yaleb") in message and yaleb.URLS[0] in message
    assert "download=True" in message and "--download" in message


def test_download_checks_the_archive_format(tiny_root, local_server, tmp_path, monkeypatch):
    url = local_server.add("extyaleb/CroppedYale.zip", (tiny_root / "yaleb" / "CroppedYale.zip").read_bytes())
    monkeypatch.setattr(yaleb, "URLS", (url,))
    root = tmp_path / "root"
    data = YaleB(root=root, download=True)
    assert len(data) == 5 and data.subject_id.tolist() == [1, 1, 1, 3, 3]
    assert [path.name for path in (root / "yaleb").iterdir()] == ["CroppedYale.zip"]

    local_server.truncate("extyaleb/CroppedYale.zip")
    with pytest.raises(DownloadError, match="not a valid file") as info:
        YaleB(root=tmp_path / "other", download=True)
    assert url in str(info.value) and "damaged or incomplete zip data" in str(info.value)
    assert list((tmp_path / "other" / "yaleb").iterdir()) == []


def test_download_rejects_an_archive_with_a_damaged_member(tiny_root, local_server, tmp_path, monkeypatch):
    # The ambient image is never decoded by the loader, but a download is checked member by member.
    path = tiny_root / "yaleb" / "CroppedYale.zip"
    _flip_member_byte(path, "CroppedYale/yaleB03/yaleB03_P00_Ambient.pgm")
    monkeypatch.setattr(yaleb, "URLS", (local_server.add("CroppedYale.zip", path.read_bytes()),))
    with pytest.raises(DownloadError, match="member CroppedYale/yaleB03/yaleB03_P00_Ambient.pgm"):
        YaleB(root=tmp_path / "root", download=True)
    assert list((tmp_path / "root" / "yaleb").iterdir()) == []


@pytest.mark.data
def test_download_of_the_real_archive(real_data_root, local_server, tmp_path, monkeypatch):
    source = real_data_root / "yaleb" / "CroppedYale.zip"
    monkeypatch.setattr(yaleb, "URLS", (local_server.add("CroppedYale.zip", source.read_bytes()),))
    data = YaleB(root=tmp_path, download=True)
    assert len(data) == 2414 and data.factor_sizes == (38, 64)
    assert (tmp_path / "yaleb" / "CroppedYale.zip").read_bytes() == source.read_bytes()
