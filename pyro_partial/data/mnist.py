"""MNIST and Fashion-MNIST read through torchvision from a local data root, and as tensors for full-batch
training.

Both data sets are four IDX files of the same names and format (``dataset="mnist"`` or
``dataset="fashion-mnist"``, Xiao et al. 2017's drop-in replacement of ten clothing classes). They are
looked for under ``<data root>/MNIST/raw/`` or ``<data root>/FashionMNIST/raw/`` (the layouts of
torchvision's ``MNIST(root)`` and ``FashionMNIST(root)``), where the data root is the ``root`` argument, else
``$PYRO_PARTIAL_DATA``, else ``~/.pyro_partial/data`` (:func:`pyro_partial.data.paths.data_root`).
Uncompressed files are read in place. Gzipped files, as distributed, are decompressed once into the
writable cache (:func:`pyro_partial.data.paths.cache_dir`), because torchvision reads only uncompressed files
and the data root may be read-only. With neither, ``download=True`` lets torchvision download into the data
root. Images can be enlarged to 32x32, as Mathieu et al. (2019) do for Fashion-MNIST (bilinear resizing).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torchvision.transforms.functional import resize

from pyro_partial.data.paths import DATA_ENV, cache_dir, data_root
from pyro_partial.data.semi_supervised import validation_rows

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SPLITS = ("train", "validation", "test")
DATASETS: dict[str, type[torchvision.datasets.MNIST]] = {
    "mnist": torchvision.datasets.MNIST,
    "fashion-mnist": torchvision.datasets.FashionMNIST,
}
"""The data sets in MNIST's IDX format, by name: torchvision classes, named as their folder under the root."""
RESIZE_MODES = ("bilinear", "pad")


def mnist_root(
    root: str | os.PathLike | None = None, *, download: bool = False, dataset: str = "mnist"
) -> Path:
    """Return a directory ``R`` holding the uncompressed IDX files under ``R/MNIST/raw/`` (or
    ``R/FashionMNIST/raw/`` for ``dataset="fashion-mnist"``).

    ``R`` is the data root itself when it holds the uncompressed files, else a cache directory into which
    the gzipped files of the data root are decompressed (once: a cached file is re-made only when its
    ``.gz`` is newer). Pass ``R`` to ``torchvision.datasets.MNIST(R, download=False)`` (or ``FashionMNIST``).

    :param root: the data root; see :func:`pyro_partial.data.paths.data_root`.
    :param download: when the data root holds no files of the data set, download them into it with
        torchvision.
    :param dataset: a name in :data:`DATASETS`.
    :raises FileNotFoundError: when the files are missing and ``download`` is false.
    """
    dataset_class = _dataset_class(dataset)
    folder = dataset_class.__name__
    base = data_root(root)
    raw = base / folder / "raw"
    if all((raw / name).is_file() for name in IDX_FILES):
        return base
    if all((raw / f"{name}.gz").is_file() for name in IDX_FILES):
        return _decompressed_copy(raw, folder)
    if download:
        dataset_class(base, download=True)
        return base
    raise FileNotFoundError(
        f"{folder} not found: looked for {', '.join(IDX_FILES)} (uncompressed, or each with .gz) in {raw}. "
        f"Set the data root with the root argument or the {DATA_ENV} environment variable, or pass "
        f"download=True to download {folder} into {base}."
    )


def _dataset_class(dataset: str) -> type[torchvision.datasets.MNIST]:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset]


def _decompressed_copy(raw: Path, folder: str) -> Path:
    """Decompress ``raw/*.gz`` into a cache root keyed by the location of ``raw``; return that root, which
    holds the files under ``folder/raw``."""
    key = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:16]
    root = cache_dir(f"{folder}_root", key)
    target_dir = root / folder / "raw"
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        source, target = raw / f"{name}.gz", target_dir / name
        if not target.is_file() or target.stat().st_mtime_ns < source.stat().st_mtime_ns:
            _gunzip(source, target)
    return root


def _gunzip(source: Path, target: Path) -> None:
    """Decompress ``source`` to ``target`` atomically: readers see the old file or the whole new one."""
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as src:
            shutil.copyfileobj(src, out, length=1 << 20)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def mnist_dataset(
    train: bool = True,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    transform: Callable | None = None,
    dataset: str = "mnist",
) -> torchvision.datasets.MNIST:
    """torchvision's MNIST (or ``FashionMNIST``) data set, 60,000 training or 10,000 test images, read from
    :func:`mnist_root`.

    Items are ``(PIL image, int label)`` or ``(transform(image), label)``; for training, the tensors of
    :func:`load_mnist` are much faster than per-item transforms.
    """
    root = mnist_root(root, download=download, dataset=dataset)
    return _dataset_class(dataset)(root, train=train, transform=transform)


def load_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    validation_size: int = 10_000,
    flatten: bool = True,
    download: bool = False,
    dataset: str = "mnist",
    image_size: int = 28,
    resize_mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole MNIST (or Fashion-MNIST) split as tensors: images in ``[0, 1]`` and int64 labels in ``0..9``.

    :param split: ``"train"`` (the first ``60000 - validation_size`` training images), ``"validation"``
        (the last ``validation_size`` training images) or ``"test"`` (the 10,000 test images).
    :param root: the data root; see :func:`mnist_root`.
    :param validation_size: training images held out for validation; 0 trains on all 60,000.
    :param flatten: images of shape ``(N, S²)`` if true, else ``(N, 1, S, S)``, S = ``image_size``.
    :param download: see :func:`mnist_root`.
    :param dataset: ``"mnist"`` or ``"fashion-mnist"`` (see :data:`DATASETS`).
    :param image_size: the side S of the returned images; other than 28, the images are resized.
    :param resize_mode: ``"bilinear"`` (antialiased bilinear interpolation, as torchvision's ``Resize``,
        which Mathieu et al.'s reference code applies to Fashion-MNIST) or ``"pad"`` (zero borders of
        (S − 28)/2 pixels, S ≥ 28 with S − 28 even).
    :returns: ``(images, labels)``, images of the default float dtype, labels of shape ``(N,)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = mnist_dataset(train=split != "test", root=root, download=download, dataset=dataset)
    images, labels = data.data, data.targets
    if split != "test":
        rows = validation_rows(len(labels), validation_size, validation=split == "validation")
        images, labels = images[rows], labels[rows]
    images = resize_images(
        images.to(torch.get_default_dtype()).div_(255).unsqueeze(1), image_size, resize_mode
    )
    return (images.reshape(len(images), -1) if flatten else images), labels


def resize_images(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Square images ``(N, C, H, H)`` as ``(N, C, size, size)`` (unchanged when ``size == H``).

    :param mode: ``"bilinear"`` (antialiased interpolation; values stay in the input's range) or
        ``"pad"`` (zero borders; ``size - H`` must be even and non-negative).
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"the resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    side = images.shape[-1]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive integer, got {size!r}")
    if size == side:
        return images
    if mode == "bilinear":
        return resize(images, [size, size], antialias=True)
    border, odd = divmod(size - side, 2)
    if border < 0 or odd:
        raise ValueError(
            f"image_size={size}: padding {side}x{side} images needs a size of {side} + an even number"
        )
    return torch.nn.functional.pad(images, (border, border, border, border))
