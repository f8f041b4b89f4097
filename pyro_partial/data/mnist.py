"""MNIST and Fashion-MNIST read through torchvision from a local data root, and as tensors for full-batch
training.

Both data sets are four IDX files of the same names and format (``dataset="mnist"`` or
``dataset="fashion-mnist"``, Xiao et al. 2017's drop-in replacement of ten clothing classes). They are
looked for under ``<data root>/MNIST/raw/`` or ``<data root>/FashionMNIST/raw/`` (the layouts of
torchvision's ``MNIST(root)`` and ``FashionMNIST(root)``), then under the same folders of the download
folder (:func:`pyro_partial.data.paths.search_roots`); the data root is the ``root`` argument, else
``$PYRO_PARTIAL_DATA``, else ``~/.pyro_partial/data``. Each file may be uncompressed or gzipped (``.gz``,
as distributed). Four uncompressed files in one folder are read in place; otherwise the files are
decompressed (or copied) into the writable cache (:func:`pyro_partial.data.paths.cache_dir`), because
torchvision reads only uncompressed files from one folder and the data root may be read-only. A cached copy
is re-made whenever the size or md5 of its source changes.

Every file is checked before it is read: the IDX magic number, 28x28 images, a file size equal to the one
its header gives, as many labels as images in each split, labels in 0..9. An error names the file, and
when the file read was a decompressed or cached copy, the source it was made from.

``download=True`` fetches the missing ``.gz`` files with torchvision's downloader, from the mirrors and
with the md5s of ``torchvision.datasets.MNIST.mirrors`` / ``.resources`` (``FashionMNIST``'s for
Fashion-MNIST), into the data root when it is writable, else into the download folder
(:func:`pyro_partial.data.paths.download_root`). Images can be enlarged to 32x32, as Mathieu et al.
(2019) do for Fashion-MNIST (bilinear resizing).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.utils import calculate_md5
from torchvision.transforms.functional import resize

from pyro_partial.data.download import RemoteFile, download_file, missing_files_error
from pyro_partial.data.files import atomic_write
from pyro_partial.data.idx import read_idx_bytes, read_idx_shape
from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.paths import cache_dir, download_root, search_roots
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
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def mnist_root(
    root: str | os.PathLike | None = None, *, download: bool = False, dataset: str = "mnist"
) -> Path:
    """Return a directory ``R`` holding the checked, uncompressed IDX files under ``R/MNIST/raw/`` (or
    ``R/FashionMNIST/raw/`` for ``dataset="fashion-mnist"``).

    ``R`` is the data root itself when it holds the four uncompressed files, else a cache directory into
    which the files found are decompressed (once: a cached file is re-made when the size or md5 of its
    source differs from those it was made from). Pass ``R`` to ``torchvision.datasets.MNIST(R)`` (or
    ``FashionMNIST``).

    :param root: the data root; see :func:`pyro_partial.data.paths.data_root`.
    :param download: download the missing files (see the module docstring).
    :param dataset: a name in :data:`DATASETS`.
    :raises FileNotFoundError: when files are missing and ``download`` is false; the message names them
        and the folders looked in.
    :raises pyro_partial.data.integrity.DataFileError: when a file is damaged or not in the IDX format.
    :raises pyro_partial.data.download.DownloadError: when a download fails (nothing is kept then).
    """
    dataset_class = _dataset_class(dataset)
    folder = dataset_class.__name__
    sources = _find_sources(folder, root)
    missing = [name for name, path in sources.items() if path is None]
    if missing and download:
        directory = download_root(root) / folder / "raw"
        for name in missing:
            download_file(_remote(dataset_class, name), directory)
        sources = _find_sources(folder, root)
        missing = [name for name, path in sources.items() if path is None]
    if missing:
        raise missing_files_error(
            folder,
            [f"{name} (or {name}.gz)" for name in missing],
            tuple(base / folder / "raw" for base in search_roots(root)),
            dataset_class.mirrors,
        )
    folders = {path.parent for path in sources.values()}
    if len(folders) == 1 and not any(path.suffix == ".gz" for path in sources.values()):
        base, descriptions = folders.pop().parent.parent, {name: str(path) for name, path in sources.items()}
    else:
        base, descriptions = _decompressed_copy(sources, folder)
    _check_files(base / folder / "raw", descriptions)
    return base


def _dataset_class(dataset: str) -> type[torchvision.datasets.MNIST]:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset]


def _find_sources(folder: str, root: str | os.PathLike | None) -> dict[str, Path | None]:
    """Each IDX file's first copy over the search roots, uncompressed or ``.gz``; ``None`` where missing."""
    sources: dict[str, Path | None] = dict.fromkeys(IDX_FILES)
    for name in IDX_FILES:
        for base in search_roots(root):
            raw = base / folder / "raw"
            found = [path for path in (raw / name, raw / f"{name}.gz") if path.is_file()]
            if found:
                sources[name] = found[0]
                break
    return sources


def _remote(dataset_class: type[torchvision.datasets.MNIST], name: str) -> RemoteFile:
    """The ``.gz`` of IDX file ``name`` at torchvision's mirrors, with torchvision's md5."""
    filename = f"{name}.gz"
    md5 = dict(dataset_class.resources)[filename]
    return RemoteFile(filename, tuple(f"{mirror}{filename}" for mirror in dataset_class.mirrors), md5)


def _decompressed_copy(sources: dict[str, Path], folder: str) -> tuple[Path, dict[str, str]]:
    """Decompress (or copy) the source files into a cache root ``R`` keyed by their locations; return ``R``,
    which holds them under ``folder/raw``, and a description of each file for error messages.

    ``R/sources.json`` records the size and md5 of the source each file was made from; a file whose
    source no longer matches its record is made again.
    """
    key = hashlib.sha1("\n".join(str(sources[name].resolve()) for name in IDX_FILES).encode()).hexdigest()
    root = cache_dir(f"{folder}_root", key[:16])
    target_dir = root / folder / "raw"
    target_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = root / "sources.json"
    manifest = _read_manifest(manifest_path)
    descriptions = {}
    for name in IDX_FILES:
        source, target = sources[name], target_dir / name
        record = {"source": str(source), "size": source.stat().st_size, "md5": calculate_md5(source)}
        made = manifest.get(name, {})
        if target.is_file() and made == {**record, "output_size": target.stat().st_size}:
            descriptions[name] = (
                f"{target} (a cached copy made earlier from {source}, whose size and md5 it still matches; "
                "delete the cached copy to make it again)"
            )
            continue
        manifest.pop(name, None)
        _write_manifest(manifest_path, manifest)
        _make_copy(source, target)
        manifest[name] = {**record, "output_size": target.stat().st_size}
        _write_manifest(manifest_path, manifest)
        verb = "decompressed" if source.suffix == ".gz" else "copied"
        descriptions[name] = f"{target} ({verb} just now from {source})"
    return root, descriptions


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _write_manifest(path: Path, manifest: dict) -> None:
    atomic_write(path, lambda out: out.write(json.dumps(manifest, indent=1).encode()))


def _make_copy(source: Path, target: Path) -> None:
    """Decompress a ``.gz`` source (or copy any other) to ``target``.

    :raises DataFileError: when the source is not a complete gzip file.
    """

    def copy(out) -> None:
        with source.open("rb") as stream:
            shutil.copyfileobj(stream, out, length=1 << 20)

    def gunzip(out) -> None:
        with gzip.open(source, "rb") as stream:
            while True:
                try:
                    chunk = stream.read(1 << 20)
                except (OSError, EOFError, zlib.error) as error:
                    raise DataFileError(
                        source,
                        f"not a complete gzip file ({type(error).__name__}: {error})",
                        expected=f"the gzip-compressed IDX file {target.name}",
                    ) from error
                if not chunk:
                    return
                out.write(chunk)

    atomic_write(target, gunzip if source.suffix == ".gz" else copy)


def _check_files(raw: Path, descriptions: dict[str, str]) -> None:
    """Check the IDX headers and sizes of the four files in ``raw`` and that each split has one label in
    0..9 per image; errors name each file by ``descriptions[name]``."""
    for prefix in ("train", "t10k"):
        images, labels = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        shape = read_idx_shape(raw / images, 3, name=descriptions[images])
        if shape[1:] != IMAGE_SHAPE:
            raise DataFileError(
                descriptions[images], f"images of {shape[1]}x{shape[2]} pixels", expected="28x28 images"
            )
        targets = read_idx_bytes(raw / labels, 1, name=descriptions[labels])
        if len(targets) != shape[0]:
            raise DataFileError(
                descriptions[labels],
                f"{len(targets)} labels, but the images file {descriptions[images]} holds {shape[0]} images",
                expected="one label per image (are files of the training and test sets swapped?)",
            )
        if targets.max(initial=0) >= NUM_CLASSES:
            raise DataFileError(
                descriptions[labels], f"label {targets.max()} out of range", expected="labels in 0..9"
            )


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
