"""dSprites (Matthey et al. 2017): 2-D shapes with five generative factors, as a ground-truth data set.

Two sources give the same indexing, factors and images:

* ``source="npz"`` reads the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` from
  ``<data root>/dsprites/`` (keys ``imgs`` ``(N, 64, 64)`` uint8 in {0, 1} and ``latents_classes``
  ``(N, 6)`` int64; ``latents_values`` is used when present; the pickled ``metadata`` is never read, so
  no pickle is loaded). Images are kept bit-packed: 737,280 images take 377 MB.
* ``source="procedural"`` re-renders every image on demand (see :mod:`pyro_partial.data.dsprites_render`
  for the geometry and how it was checked against the real frames of ``dsprites.gif``); nothing is
  materialised beyond a lazily filled ~30 MB sprite cache.

Latents in the file, in order: ``color`` (1 value), ``shape`` (square, ellipse, heart), ``scale``
(``linspace(0.5, 1, 6)``), ``orientation`` (``linspace(0, 2 pi, 40)``, both ends present), ``posX`` and
``posY`` (``linspace(0, 1, 32)``). Image ``i`` holds the combination whose mixed-radix number over the
latent sizes, ``posY`` fastest, is ``i``. As in disentanglement_lib, the ground-truth view drops the
constant ``color``: its factors are the last five latents, and since ``color`` has one value the dataset
index is still the file's image index.

Files are looked for under ``<data root>/dsprites/``, then under the same folder of the download folder
(:func:`pyro_partial.data.paths.search_roots`). ``download=True`` fetches a missing file from the official
repository (:data:`NPZ_URLS`, :data:`GIF_URLS`; replace the tuples to use a mirror) into the data root
when it is writable, else into the download folder. The owners publish no checksums. The npz is checked
against :data:`NPZ_MD5`, the md5 that other public dSprites loaders check for the file at that URL, and
as a zip whose every member passes its CRC-32 check; the GIF, which has no known checksum, by its format
(320 frames of 64x64 pixels).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from pyro_partial.data.download import RemoteFile, find_or_download
from pyro_partial.data.dsprites_render import SpriteCache
from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.integrity import DataFileError, check_zip, zip_errors

NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
GIF_NAME = "dsprites.gif"
_REPOSITORY = "https://github.com/google-deepmind/dsprites-dataset/raw/master/"
NPZ_URLS = (f"{_REPOSITORY}{NPZ_NAME}",)
"""Where ``download=True`` fetches the npz from, in order."""
NPZ_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
"""md5 of the official npz: not published by its owners, but the value public dSprites loaders check."""
GIF_URLS = (f"{_REPOSITORY}{GIF_NAME}",)
"""Where ``download=True`` fetches ``dsprites.gif`` from, in order."""
GIF_FRAMES = 320
_NPZ_LAYOUT = (
    "a dSprites npz: a zip of the arrays imgs (N, 64, 64) uint8 and latents_classes (N, 6) int64 (and "
    "latents_values, metadata)"
)
_ARRAY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)
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
    member = "imgs.npy"
    with (
        zip_errors(path, member, expected=_NPZ_LAYOUT),
        zipfile.ZipFile(path) as archive,
        archive.open(member) as stream,
    ):
        try:
            major, _ = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(stream)
        except ValueError as error:
            raise DataFileError(path, f"not an npy array ({error})", member=member) from error
        if shape != (num, IMAGE_SIZE, IMAGE_SIZE) or dtype != np.uint8 or fortran_order:
            raise DataFileError(
                path,
                f"'imgs' must be a C-ordered uint8 array of shape ({num}, 64, 64), "
                f"got {'Fortran-ordered ' if fortran_order else ''}{dtype} {shape}",
                member=member,
            )
        packed = np.empty((num, IMAGE_SIZE, IMAGE_SIZE // 8), dtype=np.uint8)
        for start in range(0, num, chunk):
            stop = min(start + chunk, num)
            count = (stop - start) * IMAGE_SIZE * IMAGE_SIZE
            block = np.frombuffer(stream.read(count), dtype=np.uint8)
            if block.size != count:
                raise DataFileError(path, f"'imgs' is truncated at image {start}", member=member)
            if block.max(initial=0) > 1:
                raise DataFileError(path, "'imgs' must hold binary images (values 0 and 1)", member=member)
            packed[start:stop] = np.packbits(block.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), axis=-1)
    return packed


def _read_latents(path: Path) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Latent sizes and per-class values from an npz whose ``latents_classes`` enumerate a full grid.

    The grid may be smaller than the official one (a reduced file in the same format), but it must be
    complete and in the official mixed-radix order, ``posY`` fastest.
    """
    with open(path, "rb") as stream:
        with zip_errors(path, expected=_NPZ_LAYOUT):
            try:
                data = np.load(stream, allow_pickle=False)
            except (ValueError, OSError) as error:
                raise DataFileError(path, f"not an npz archive ({error})", expected=_NPZ_LAYOUT) from error
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DataFileError(path, "a single npy array, not an npz archive", expected=_NPZ_LAYOUT)
        with data:
            missing = {"imgs", "latents_classes"} - set(data.files)
            if missing:
                raise DataFileError(path, f"missing key(s) {sorted(missing)}", expected=_NPZ_LAYOUT)
            classes = _read_array(data, "latents_classes", path)
            values = _read_array(data, "latents_values", path) if "latents_values" in data.files else None
    if classes.ndim != 2 or classes.shape[1] != len(LATENT_NAMES) or len(classes) == 0:
        raise DataFileError(path, f"'latents_classes' must have shape (N, 6), got {classes.shape}")
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    expected = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)
    if classes.shape != expected.shape or not np.array_equal(classes, expected):
        raise DataFileError(
            path,
            f"'latents_classes' must enumerate the full grid of sizes {sizes} in mixed-radix "
            "order over (color, shape, scale, orientation, posX, posY), posY fastest",
        )
    if sizes[0] != 1:
        raise DataFileError(path, f"dSprites has a single color, got {sizes[0]} color classes")
    if values is None:
        per_class = tuple(v[:s] for v, s in zip(latent_values(), sizes, strict=True))
    else:
        first_rows = (np.unique(column, return_index=True)[1] for column in classes.T)
        per_class = tuple(values[rows, f] for f, rows in enumerate(first_rows))
    return sizes, per_class


def _read_array(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """The array ``key`` of an open npz, with the errors of a damaged member naming the file and member."""
    try:
        return data[key]
    except _ARRAY_ERRORS as error:
        raise DataFileError(
            path,
            f"damaged array ({type(error).__name__}: {error})",
            expected=_NPZ_LAYOUT,
            member=f"{key}.npy",
        ) from error


def check_npz(path: str | os.PathLike) -> None:
    """Check a downloaded npz: a complete zip whose members pass their CRC-32 checks, with the dSprites keys.

    :raises pyro_partial.data.integrity.DataFileError: naming the file (and member) otherwise.
    """
    check_zip(path, expected=_NPZ_LAYOUT)
    with zipfile.ZipFile(path) as archive:
        missing = {"imgs.npy", "latents_classes.npy"} - set(archive.namelist())
    if missing:
        raise DataFileError(path, f"missing member(s) {sorted(missing)}", expected=_NPZ_LAYOUT)


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
    :param download: for ``source="npz"``, download a missing file (see the module docstring); a
        procedural data set reads no file.

    Factors ``(shape, scale, orientation, posX, posY)`` of sizes ``(3, 6, 40, 32, 32)`` (a reduced npz
    has its own sizes); observations are float tensors ``(1, 64, 64)`` with values 0 and 1.
    ``factor_values[f]`` maps the indices of factor ``f`` to their values (radians for orientation).
    """

    factor_names = LATENT_NAMES[1:]
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(
        self, source: str = "npz", root: str | os.PathLike | None = None, *, download: bool = False
    ) -> None:
        if source == "procedural":
            sizes, values = LATENT_SIZES, latent_values()
            self._packed = None
            self._sprites = SpriteCache(values[2], values[3])
        elif source == "npz":
            remote = RemoteFile(NPZ_NAME, NPZ_URLS, NPZ_MD5, verify=check_npz)
            path = find_or_download(
                Path("dsprites") / NPZ_NAME,
                remote,
                root,
                download=download,
                dataset="dSprites",
                hint=" Or use source='procedural', which renders the images and reads no file.",
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


def load_gif_traversals(
    root: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 320 real frames of the official ``dsprites.gif`` with their factor indices.

    Reads ``<data root>/dsprites/dsprites.gif`` (``download=True`` fetches a missing one, see the module
    docstring). Returns ``frames`` bool ``(320, 64, 64)``, ``factors`` int64 ``(320, 5)`` (shape, scale,
    orientation, posX, posY) and a ``"shape/factor"`` label per frame naming the traversed factor. The
    factor labels were read off the frames (sprite bounding boxes and areas) and agree with the geometry in
    :mod:`pyro_partial.data.dsprites_render`.

    :raises pyro_partial.data.integrity.DataFileError: when the file is not such a GIF.
    """
    remote = RemoteFile(GIF_NAME, GIF_URLS, verify=_read_gif)
    path = find_or_download(
        Path("dsprites") / GIF_NAME, remote, root, download=download, dataset="dsprites.gif"
    )
    factors, labels = _gif_factor_table()
    return _read_gif(path), factors, labels


def _read_gif(path: Path) -> np.ndarray:
    """The frames ``(320, 64, 64)`` of ``dsprites.gif`` as booleans."""
    expected = f"a GIF of {GIF_FRAMES} frames of {IMAGE_SIZE}x{IMAGE_SIZE} pixels"
    try:
        with Image.open(path) as gif:
            frames = np.stack([np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(gif)])
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        problem = f"not a readable GIF ({type(error).__name__}: {error})"
        raise DataFileError(path, problem, expected=expected) from error
    if frames.shape != (GIF_FRAMES, IMAGE_SIZE, IMAGE_SIZE):
        raise DataFileError(path, f"frames of shape {frames.shape}", expected=expected)
    return frames
