"""Extended Yale Face Database B, cropped faces, read straight from the original ``CroppedYale.zip``.

Nothing is extracted: the PGM members are decoded in memory (under a second for the whole archive).

Members ``CroppedYale/yaleBNN/yaleBNN_P00A{+|-}aaaE{+|-}ee.pgm`` are 168x192 (W x H) greyscale images of
subject ``NN`` lit from azimuth ``aaa`` and elevation ``ee`` degrees. Everything else is skipped: the
per-subject ``*_P00_Ambient.pgm`` (no directional light), the corrupted ``*.pgm.bad`` files and the
``*.info`` lists. The original archive gives 2,414 images of 38 subjects (ids 1..39 without 14) under 64
lighting conditions (azimuth in [-130, 130], elevation in [-40, 90]); 18 subject/condition pairs are
missing because their images are the ``.bad`` ones.

The archive is looked for at ``<data root>/yaleb/CroppedYale.zip``, then at the same place in the download
folder (:func:`pyro_partial.data.paths.search_roots`). ``download=True`` fetches a missing archive from
:data:`URLS` (the official address; replace the tuple to use a mirror) into the data root when it is
writable, else into the download folder. No checksum of the archive is published, so a download is
checked by its format: a complete zip (central directory present) whose every member passes its CRC-32
check, holding at least one face image.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pyro_partial.data.download import RemoteFile, find_or_download
from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.integrity import DataFileError, check_zip, zip_errors

ARCHIVE = Path("yaleb") / "CroppedYale.zip"
URLS = ("http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip",)
"""Where ``download=True`` fetches ``CroppedYale.zip`` from, in order."""
WIDTH, HEIGHT = 168, 192
_EXPECTED = "the CroppedYale.zip distribution of CroppedYale/yaleBNN/yaleBNN_P00A...E....pgm images"
_NAME = re.compile(r"^CroppedYale/yaleB(\d{2})/yaleB\1_P00A([+-]\d{3})E([+-]\d{2})\.pgm$")


def parse_member_name(name: str) -> tuple[int, int, int] | None:
    """``(subject id, azimuth, elevation)`` of an image member, or ``None`` for any other member."""
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def read_archive(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Decode every lit face in the zip, sorted by (subject, azimuth, elevation).

    Returns ``images`` uint8 ``(N, 192, 168)`` and ``labels`` int64 ``(N, 3)`` holding the original
    subject id, azimuth and elevation in degrees.

    :raises pyro_partial.data.integrity.DataFileError: (a ``ValueError``) for a truncated archive or a
        damaged or malformed image member; the message names the archive and the member.
    """
    with zip_errors(path, expected=_EXPECTED), zipfile.ZipFile(path) as archive:
        members = sorted(
            (parsed, name) for name in archive.namelist() if (parsed := parse_member_name(name)) is not None
        )
        if not members:
            raise DataFileError(path, "no face images in the archive", expected=_EXPECTED)
        images = np.empty((len(members), HEIGHT, WIDTH), dtype=np.uint8)
        for n, (_, name) in enumerate(members):
            with zip_errors(path, name, expected=_EXPECTED):
                data = archive.read(name)
            images[n] = _decode_pgm(data, path, name)
    return images, np.array([parsed for parsed, _ in members], dtype=np.int64)


def _decode_pgm(data: bytes, path: str | os.PathLike, name: str) -> np.ndarray:
    """The pixels ``(192, 168)`` of the PGM member ``name`` of the archive ``path``."""
    expected = f"a {WIDTH}x{HEIGHT} (W x H) greyscale PGM"
    try:
        with Image.open(io.BytesIO(data)) as image:
            size, mode, pixels = image.size, image.mode, np.asarray(image)
    except (OSError, ValueError, SyntaxError) as error:
        problem = f"not a decodable image ({type(error).__name__}: {error}; {len(data)} bytes)"
        raise DataFileError(path, problem, expected=expected, member=name) from error
    if size != (WIDTH, HEIGHT) or mode != "L":
        problem = f"a {size[0]}x{size[1]} image of mode {mode}"
        raise DataFileError(path, problem, expected=expected, member=name)
    return pixels


def check_archive(path: str | os.PathLike) -> None:
    """Check a downloaded archive: complete, every member's CRC-32 correct, at least one face image.

    :raises pyro_partial.data.integrity.DataFileError: naming the archive (and member) otherwise.
    """
    check_zip(path, expected=_EXPECTED)
    with zipfile.ZipFile(path) as archive:
        if not any(parse_member_name(name) is not None for name in archive.namelist()):
            raise DataFileError(path, "no face images in the archive", expected=_EXPECTED)


def light_directions(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Unit light vectors ``(..., 3)`` for angles in degrees (x to the subject's right, which is the image's
    left; y up; z towards the camera)."""
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=-1)


def train_test_split(
    subjects: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``round(test_fraction * n_s)`` random images of every subject ``s`` (``n_s`` images).

    :param subjects: subject index of every image, shape ``(N,)``.
    :returns: sorted int64 index arrays ``(train, test)`` partitioning ``range(N)``. The draw uses
        ``numpy.random.default_rng(seed)`` over subjects in increasing order, so it is reproducible.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    subjects = np.asarray(subjects)
    if subjects.ndim != 1:
        raise ValueError(f"subjects must have shape (N,), got {subjects.shape}")
    rng = np.random.default_rng(seed)
    test = []
    for subject in np.unique(subjects):
        members = np.flatnonzero(subjects == subject)
        test.append(rng.choice(members, size=round(test_fraction * len(members)), replace=False))
    test = np.sort(np.concatenate(test)).astype(np.int64)
    return np.setdiff1d(np.arange(len(subjects)), test).astype(np.int64), test


class YaleB(GroundTruthDataset):
    """Cropped Yale B faces as a data set and a ground-truth data set.

    :param root: data root holding ``yaleb/CroppedYale.zip`` (see :func:`pyro_partial.data.paths.data_root`).
    :param size: ``(height, width)`` to resize to (antialiased bilinear), or ``None`` for 192x168.
    :param download: download a missing archive (see the module docstring).

    Per image ``i``: ``images[i]`` uint8 ``(H, W)``; ``subject[i]`` in ``0..37`` and
    ``subject_id[i]`` the original number; ``azimuth[i]``, ``elevation[i]`` in degrees; ``condition[i]``
    in ``0..63`` indexing ``conditions`` ``(64, 2)`` = (azimuth, elevation) pairs in sorted order.
    ``__getitem__`` returns ``(image (1, H, W) float in [0, 1], factors (2,) = (subject, condition))``.

    Missing combinations: :meth:`observations_from_factors` gives, for a subject/condition pair with
    no image, that subject's image whose light direction is closest in angle (``missing`` lists the
    pairs, shape ``(M, 2)``).
    """

    factor_names = ("subject", "lighting")

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        size: tuple[int, int] | None = None,
        *,
        download: bool = False,
    ) -> None:
        remote = RemoteFile(ARCHIVE.name, URLS, verify=check_archive)
        path = find_or_download(ARCHIVE, remote, root, download=download, dataset="Yale B")
        images, labels = read_archive(path)
        if size is not None:
            images = _resize(images, size)
        self.images = torch.from_numpy(images)
        self.subject_id = labels[:, 0]
        subject_ids, self.subject = np.unique(self.subject_id, return_inverse=True)
        self.azimuth, self.elevation = labels[:, 1], labels[:, 2]
        self.conditions, self.condition = np.unique(labels[:, 1:], axis=0, return_inverse=True)
        self.condition = self.condition.reshape(-1)
        self.factor_sizes = (len(subject_ids), len(self.conditions))
        self.observation_shape = (1, *images.shape[1:])
        self._lookup = self._nearest_image_table()
        present = np.zeros(self.factor_sizes, dtype=bool)
        present[self.subject, self.condition] = True
        self.missing = np.argwhere(~present)

    def _nearest_image_table(self) -> np.ndarray:
        """Image index ``(S, C)`` per subject and condition, nearest lit condition where one is missing."""
        directions = light_directions(self.conditions[:, 0], self.conditions[:, 1])
        cosine = directions @ directions.T
        table = np.empty(self.factor_sizes, dtype=np.int64)
        for subject in range(self.factor_sizes[0]):
            members = np.flatnonzero(self.subject == subject)
            nearest = np.argmax(cosine[:, self.condition[members]], axis=1)
            table[subject] = members[nearest]
        return table

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        factors = torch.tensor([self.subject[index], self.condition[index]], dtype=torch.int64)
        return self.images[index].unsqueeze(0).float() / 255.0, factors

    def observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Faces ``(N, 1, H, W)`` in [0, 1] for ``(subject, condition)`` rows ``(N, 2)``; ``rng`` unused."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != 2:
            raise ValueError(f"factors must have shape (N, 2) (subject, condition), got {factors.shape}")
        if (factors < 0).any() or (factors >= np.asarray(self.factor_sizes)).any():
            raise ValueError(f"factors out of range: columns must lie in [0, {self.factor_sizes})")
        index = torch.from_numpy(self._lookup[factors[:, 0], factors[:, 1]])
        return self.images[index].unsqueeze(1).float() / 255.0


def _resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 images ``(N, H, W)`` to ``(N, *size)`` with Pillow's antialiased bilinear filter."""
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be a (height, width) pair of positive ints, got {size}")
    resample = Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(im).resize((width, height), resample)) for im in images])
