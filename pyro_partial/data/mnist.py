"""MNIST read through torchvision from a local data root, and as tensors for full-batch training.

The four IDX files are looked for under ``<data root>/MNIST/raw/`` (the layout of torchvision's
``MNIST(root)``), where the data root is the ``root`` argument, else ``$PYRO_PARTIAL_DATA``, else
``~/.pyro_partial/data`` (:func:`pyro_partial.data.paths.data_root`). Uncompressed files are read in
place. Gzipped files, as distributed, are decompressed once into the writable cache
(:func:`pyro_partial.data.paths.cache_dir`), because torchvision reads only uncompressed files and the
data root may be read-only. With neither, ``download=True`` lets torchvision download into the data root.
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

from pyro_partial.data.paths import DATA_ENV, cache_dir, data_root
from pyro_partial.data.semi_supervised import validation_rows

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SPLITS = ("train", "validation", "test")


def mnist_root(root: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Return a directory ``R`` holding the uncompressed IDX files under ``R/MNIST/raw/``.

    ``R`` is the data root itself when it holds the uncompressed files, else a cache directory into which
    the gzipped files of the data root are decompressed (once: a cached file is re-made only when its
    ``.gz`` is newer). Pass ``R`` to ``torchvision.datasets.MNIST(R, download=False)``.

    :param root: the data root; see :func:`pyro_partial.data.paths.data_root`.
    :param download: when the data root holds no MNIST files, download them into it with torchvision.
    :raises FileNotFoundError: when the files are missing and ``download`` is false.
    """
    base = data_root(root)
    raw = base / "MNIST" / "raw"
    if all((raw / name).is_file() for name in IDX_FILES):
        return base
    if all((raw / f"{name}.gz").is_file() for name in IDX_FILES):
        return _decompressed_copy(raw)
    if download:
        torchvision.datasets.MNIST(base, download=True)
        return base
    raise FileNotFoundError(
        f"MNIST not found: looked for {', '.join(IDX_FILES)} (uncompressed, or each with .gz) in {raw}. "
        f"Set the data root with the root argument or the {DATA_ENV} environment variable, or pass "
        f"download=True to download MNIST into {base}."
    )


def _decompressed_copy(raw: Path) -> Path:
    """Decompress ``raw/*.gz`` into a cache root keyed by the location of ``raw``; return that root."""
    key = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:16]
    root = cache_dir("MNIST_root", key)
    target_dir = root / "MNIST" / "raw"
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
) -> torchvision.datasets.MNIST:
    """torchvision's MNIST data set (60,000 training or 10,000 test images) read from :func:`mnist_root`.

    Items are ``(PIL image, int label)`` or ``(transform(image), label)``; for training, the tensors of
    :func:`load_mnist` are much faster than per-item transforms.
    """
    return torchvision.datasets.MNIST(mnist_root(root, download=download), train=train, transform=transform)


def load_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    validation_size: int = 10_000,
    flatten: bool = True,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole MNIST split as tensors: images in ``[0, 1]`` and int64 labels in ``0..9``.

    :param split: ``"train"`` (the first ``60000 - validation_size`` training images), ``"validation"``
        (the last ``validation_size`` training images) or ``"test"`` (the 10,000 test images).
    :param root: the data root; see :func:`mnist_root`.
    :param validation_size: training images held out for validation; 0 trains on all 60,000.
    :param flatten: images of shape ``(N, 784)`` if true, else ``(N, 1, 28, 28)``.
    :param download: see :func:`mnist_root`.
    :returns: ``(images, labels)``, images of the default float dtype, labels of shape ``(N,)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dataset = mnist_dataset(train=split != "test", root=root, download=download)
    images, labels = dataset.data, dataset.targets
    if split != "test":
        rows = validation_rows(len(labels), validation_size, validation=split == "validation")
        images, labels = images[rows], labels[rows]
    images = images.to(torch.get_default_dtype()).div_(255)
    return (images.reshape(len(images), -1) if flatten else images.unsqueeze(1)), labels
