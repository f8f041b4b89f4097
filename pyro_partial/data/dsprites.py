"""dSprites (Matthey et al. 2017): 2-D shapes with five generative factors, as a ground-truth data set.

Two sources give the same indexing, factors and images:

* ``source="npz"`` reads the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` from
  ``<data root>/dsprites/`` (keys ``imgs`` ``(N, 64, 64)`` uint8 in {0, 1} and ``latents_classes``
  ``(N, 6)`` int64; ``latents_values`` is used when present; the pickled ``metadata`` is never read, so
  no pickle is loaded). Images are kept bit-packed: 737,280 images take 377 MB.
* ``source="procedural"`` re-renders every image on demand (see :mod:`pyro_partial.data._dsprites_render`
  for the geometry and how it was checked against the real frames of ``dsprites.gif``); nothing is
  materialised beyond a lazily filled ~30 MB sprite cache.

Latents in the file, in order: ``color`` (1 value), ``shape`` (square, ellipse, heart), ``scale``
(``linspace(0.5, 1, 6)``), ``orientation`` (``linspace(0, 2 pi, 40)``, both ends present), ``posX`` and
``posY`` (``linspace(0, 1, 32)``). Image ``i`` holds the combination whose mixed-radix number over the
latent sizes, ``posY`` fastest, is ``i``. As in disentanglement_lib, the ground-truth view drops the
constant ``color``: its factors are the last five latents, and since ``color`` has one value the dataset
index is still the file's image index.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from pyro_partial.data._dsprites_render import SpriteCache
from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.paths import data_root

NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
GIF_NAME = "dsprites.gif"
LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64


def latent_values() -> tuple[np.ndarray, ...]:
    """The official value of every latent class, one float64 array per latent (sizes ``LATENT_SIZES``)."""
    return (
        np.ones(1),
        np.arange(1.0, 4.0),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2.0 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    )


def sprite_centre(pos: np.ndarray) -> np.ndarray:
    """Pixel coordinate of the sprite centre for position values ``pos`` in ``[0, 1]`` (any shape)."""
    return 16.0 + 32.0 * np.asarray(pos, dtype=np.float64)


def _read_packed_images(path: Path, num: int, chunk: int = 8192) -> np.ndarray:
    """Stream ``imgs`` out of the npz and bit-pack it: returns uint8 ``(num, 64, 8)``.

    Reading in chunks keeps the peak memory near the packed size instead of the 3 GB of uint8 images.
    """
    with zipfile.ZipFile(path) as archive, archive.open("imgs.npy") as stream:
        major, _ = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(stream)
        if shape != (num, IMAGE_SIZE, IMAGE_SIZE) or dtype != np.uint8 or fortran_order:
            raise ValueError(
                f"{path}: 'imgs' must be a C-ordered uint8 array of shape ({num}, 64, 64), "
                f"got {'Fortran-ordered ' if fortran_order else ''}{dtype} {shape}"
            )
        packed = np.empty((num, IMAGE_SIZE, IMAGE_SIZE // 8), dtype=np.uint8)
        for start in range(0, num, chunk):
            stop = min(start + chunk, num)
            count = (stop - start) * IMAGE_SIZE * IMAGE_SIZE
            block = np.frombuffer(stream.read(count), dtype=np.uint8)
            if block.size != count:
                raise ValueError(f"{path}: 'imgs' is truncated at image {start}")
            if block.max(initial=0) > 1:
                raise ValueError(f"{path}: 'imgs' must hold binary images (values 0 and 1)")
            packed[start:stop] = np.packbits(block.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), axis=-1)
    return packed


def _read_latents(path: Path) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Latent sizes and per-class values from an npz whose ``latents_classes`` enumerate a full grid.

    The grid may be smaller than the official one (a reduced file in the same format), but it must be
    complete and in the official mixed-radix order, ``posY`` fastest.
    """
    with np.load(path, allow_pickle=False) as data:
        missing = {"imgs", "latents_classes"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a dSprites npz, missing key(s) {sorted(missing)}")
        classes = data["latents_classes"]
        values = data["latents_values"] if "latents_values" in data.files else None
    if classes.ndim != 2 or classes.shape[1] != len(LATENT_NAMES) or len(classes) == 0:
        raise ValueError(f"{path}: 'latents_classes' must have shape (N, 6), got {classes.shape}")
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    expected = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)
    if classes.shape != expected.shape or not np.array_equal(classes, expected):
        raise ValueError(
            f"{path}: 'latents_classes' must enumerate the full grid of sizes {sizes} in mixed-radix "
            "order over (color, shape, scale, orientation, posX, posY), posY fastest"
        )
    if sizes[0] != 1:
        raise ValueError(f"{path}: dSprites has a single color, got {sizes[0]} color classes")
    if values is None:
        per_class = tuple(v[:s] for v, s in zip(latent_values(), sizes, strict=True))
    else:
        first_rows = (np.unique(column, return_index=True)[1] for column in classes.T)
        per_class = tuple(values[rows, f] for f, rows in enumerate(first_rows))
    return sizes, per_class


def _check_factors(factors: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(sizes) or not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be an integer array of shape (N, {len(sizes)}), got {factors.shape}")
    if (factors < 0).any() or (factors >= np.asarray(sizes)).any():
        raise ValueError(f"factors out of range: column f must lie in [0, factor_sizes[f]) = {sizes}")
    return factors.astype(np.int64)


class DSprites(GroundTruthDataset):
    """dSprites as a :class:`~pyro_partial.data.ground_truth.GroundTruthDataset`.

    :param source: ``"npz"`` (the official file under ``<data root>/dsprites/``) or ``"procedural"``.
    :param root: data root for ``source="npz"``, resolved by :func:`pyro_partial.data.paths.data_root`.

    Factors ``(shape, scale, orientation, posX, posY)`` of sizes ``(3, 6, 40, 32, 32)`` (a reduced npz
    has its own sizes); observations are float tensors ``(1, 64, 64)`` with values 0 and 1.
    ``factor_values[f]`` maps the indices of factor ``f`` to their values (radians for orientation).
    """

    factor_names = LATENT_NAMES[1:]
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, source: str = "npz", root: str | os.PathLike | None = None) -> None:
        if source == "procedural":
            sizes, values = LATENT_SIZES, latent_values()
            self._packed = None
            self._sprites = SpriteCache(values[2], values[3])
        elif source == "npz":
            path = data_root(root) / "dsprites" / NPZ_NAME
            if not path.is_file():
                raise FileNotFoundError(
                    f"dSprites archive not found at {path}; download {NPZ_NAME} from "
                    "https://github.com/google-deepmind/dsprites-dataset into <data root>/dsprites/ "
                    "(data root: the root argument, else $PYRO_PARTIAL_DATA, else ~/.pyro_partial/data), "
                    "or use source='procedural'"
                )
            sizes, values = _read_latents(path)
            self._packed = _read_packed_images(path, math.prod(sizes))
            self._sprites = None
        else:
            raise ValueError(f"source must be 'npz' or 'procedural', got {source!r}")
        self.source = source
        self.factor_sizes = sizes[1:]
        self.factor_values = values[1:]

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        factors = np.array(np.unravel_index(index % len(self), self.factor_sizes))[None]
        return self._render(factors)[0], torch.from_numpy(factors[0])

    def observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Images for factor indices ``(N, 5)`` as a float tensor ``(N, 1, 64, 64)``.

        Each factor combination has exactly one image, so ``rng`` is not used.
        """
        return self._render(_check_factors(factors, self.factor_sizes))

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Dataset (and npz) index of each row of factor indices ``(N, 5)``: int64 ``(N,)``."""
        return np.ravel_multi_index(_check_factors(factors, self.factor_sizes).T, self.factor_sizes)

    def _render(self, factors: np.ndarray) -> torch.Tensor:
        if self._packed is not None:
            packed = self._packed[np.ravel_multi_index(factors.T, self.factor_sizes)]
            images = np.unpackbits(packed, axis=-1)
        else:
            shape, scale, orientation, pos_x, pos_y = factors.T
            centre_x = sprite_centre(self.factor_values[3][pos_x])
            centre_y = sprite_centre(self.factor_values[4][pos_y])
            images = self._sprites.render(shape, scale, orientation, centre_x, centre_y, IMAGE_SIZE)
        return torch.from_numpy(images.astype(np.float32)).unsqueeze(1)


def _gif_factor_table() -> tuple[np.ndarray, list[str]]:
    """Factor indices ``(320, 5)`` of the frames of ``dsprites.gif`` and a ``"shape/factor"`` label each.

    Each shape goes scale up, down, up (orientation 0, position (0, 0)), then through the 40
    orientations at scale 1; the heart then tours the border of the position grid (posY up at posX 0,
    posX up at posY 31, posY down at posX 31, posX down at posY 0); each shape ends with scale down.
    """
    up6, down6, up32, down32 = range(6), range(5, -1, -1), range(32), range(31, -1, -1)
    scale_runs = [("scale", up6, 0, 0), ("scale", down6, 0, 0), ("scale", up6, 0, 0)]
    orientation_run = [("orientation", range(40), 0, 0)]
    tour = [("posY", up32, 0, 0), ("posX", up32, 0, 31), ("posY", down32, 31, 0), ("posX", down32, 0, 0)]
    rows, labels = [], []
    for shape in ("heart", "ellipse", "square"):
        runs = scale_runs + orientation_run + (tour if shape == "heart" else []) + [("scale", down6, 0, 0)]
        for factor, indices, pos_x, pos_y in runs:
            column = DSprites.factor_names.index(factor)
            for index in indices:
                row = [SHAPE_NAMES.index(shape), 5, 0, pos_x, pos_y]
                row[column] = index
                rows.append(row)
                labels.append(f"{shape}/{factor}")
    return np.asarray(rows, dtype=np.int64), labels


def load_gif_traversals(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 320 real frames of the official ``dsprites.gif`` with their factor indices.

    Reads ``<data root>/dsprites/dsprites.gif``. Returns ``frames`` bool ``(320, 64, 64)``, ``factors``
    int64 ``(320, 5)`` (shape, scale, orientation, posX, posY) and a ``"shape/factor"`` label per frame
    naming the traversed factor. The factor labels were read off the frames (sprite bounding boxes and
    areas) and agree with the geometry in :mod:`pyro_partial.data._dsprites_render`.
    """
    path = data_root(root) / "dsprites" / GIF_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{GIF_NAME} not found at {path}; set the root argument or $PYRO_PARTIAL_DATA to the folder "
            "holding dsprites/dsprites.gif"
        )
    with Image.open(path) as gif:
        frames = np.stack([np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(gif)])
    factors, labels = _gif_factor_table()
    if frames.shape != (len(factors), IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path}: expected {len(factors)} frames of 64x64, got {frames.shape}")
    return frames, factors, labels
