"""SVHN (cropped 32×32 digits) from a local data root, as tensors for full-batch training.

The files are the distributed MATLAB v5 files ``train_32x32.mat``, ``test_32x32.mat`` and
``extra_32x32.mat`` in ``<data root>/SVHN/``, where the data root is the ``root`` argument, else
``$PYRO_PARTIAL_DATA``, else ``~/.pyro_partial/data`` (:func:`pyro_partial.data.paths.data_root`).
Each holds ``X``, uint8 of shape ``(32, 32, 3, N)`` (height, width, channel, example), and ``y`` of shape
``(N, 1)`` with labels 1..10, where 10 stands for the digit 0. A file missing from the data root is also
looked for in the download folder (:func:`pyro_partial.data.paths.search_roots`).

The files are read here rather than through ``torchvision.datasets.SVHN``, which refuses any file whose
md5 differs from the full distributed one; the layout and the 10 → 0 label mapping are torchvision's.
``download=True`` fetches a missing file with torchvision's downloader from the URL and with the md5 of
``torchvision.datasets.SVHN.split_list``, into the data root when it is writable, else into the download
folder (:func:`pyro_partial.data.paths.download_root`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
import torch
import torchvision

from pyro_partial.data.download import RemoteFile, find_or_download
from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.semi_supervised import validation_rows

SPLITS = ("train", "validation", "test", "extra")
_FILE_SPLIT = {"train": "train", "validation": "train", "test": "test", "extra": "extra"}
_LAYOUT = "a MATLAB v5 file with uint8 'X' of shape (32, 32, 3, N) and 'y' of shape (N, 1) in 1..10"


def svhn_file(split: str = "train", root: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Return the path of the ``.mat`` file that holds ``split`` (validation rows come from the train file).

    :param split: one of ``"train"``, ``"validation"``, ``"test"``, ``"extra"``.
    :param root: the data root; the file is looked for in ``<root>/SVHN/``, then in the download folder.
    :param download: download a missing file (see the module docstring).
    :raises FileNotFoundError: when the file is missing and ``download`` is false.
    :raises pyro_partial.data.download.DownloadError: when the download fails (nothing is kept then).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    url, filename, md5 = torchvision.datasets.SVHN.split_list[_FILE_SPLIT[split]]
    remote = RemoteFile(filename, (url,), md5)
    return find_or_download(Path("SVHN") / filename, remote, root, download=download, dataset="SVHN")


def read_svhn_mat(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one SVHN ``.mat`` file.

    :returns: ``(images, labels)``: uint8 images of shape ``(N, 3, 32, 32)`` (channel, height, width) and
        int64 labels of shape ``(N,)`` in ``0..9`` (the file's label 10 becomes 0).
    :raises pyro_partial.data.integrity.DataFileError: (a ``ValueError``) when the file is damaged or
        does not have the SVHN layout.
    """
    try:
        contents = scipy.io.loadmat(path, variable_names=("X", "y"))
    except (OSError, ValueError, IndexError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise DataFileError(
            path, f"not a readable MATLAB file ({type(error).__name__}: {error})", expected=_LAYOUT
        ) from error
    if "X" not in contents or "y" not in contents:
        raise DataFileError(path, "not an SVHN file: it needs the variables 'X' and 'y'", expected=_LAYOUT)
    x, y = contents["X"], contents["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataFileError(path, f"'X' must be uint8 of shape (32, 32, 3, N), got {x.dtype} {x.shape}")
    if y.shape != (x.shape[3], 1):
        raise DataFileError(path, f"'y' must have shape (N, 1) = ({x.shape[3]}, 1), got {y.shape}")
    labels = y[:, 0].astype(np.int64)
    if not np.array_equal(labels, y[:, 0]) or labels.min(initial=1) < 1 or labels.max(initial=1) > 10:
        raise DataFileError(path, "'y' must hold the integers 1..10 (10 for the digit 0)")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return torch.from_numpy(images), torch.from_numpy(labels % 10)


def load_svhn(
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    validation_size: int = 0,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole SVHN split as tensors: images in ``[0, 1]`` and int64 labels in ``0..9``.

    :param split: ``"train"`` (the first ``N - validation_size`` rows of the train file),
        ``"validation"`` (its last ``validation_size`` rows), ``"test"`` or ``"extra"``.
    :param root: the data root; see :func:`svhn_file`.
    :param validation_size: training rows held out for validation.
    :param download: see :func:`svhn_file`.
    :returns: ``(images, labels)``: images of the default float dtype and shape ``(N, 3, 32, 32)``,
        labels of shape ``(N,)``.
    """
    images, labels = read_svhn_mat(svhn_file(split, root, download=download))
    if split in ("train", "validation"):
        rows = validation_rows(len(labels), validation_size, validation=split == "validation")
        images, labels = images[rows], labels[rows]
    return images.to(torch.get_default_dtype()).div_(255), labels
