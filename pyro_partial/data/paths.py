"""Where data sets are read from, where downloads go, and where derived files are cached.

Resolution order for the data root: an explicit ``root`` argument, then the ``PYRO_PARTIAL_DATA``
environment variable, then ``~/.pyro_partial/data``. Derived files (decompressed archives, re-rendered
images) go to ``PYRO_PARTIAL_CACHE`` or ``~/.cache/pyro_partial``.

The data root may be read-only. Loaders look for a file first in the data root, then in the download
folder ``<cache>/data`` (same layout); ``download=True`` writes a missing file into the data root when it
is writable (:func:`download_root`), else into ``<cache>/data``, where the next call finds it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

DATA_ENV = "PYRO_PARTIAL_DATA"
CACHE_ENV = "PYRO_PARTIAL_CACHE"
DOWNLOAD_FLAG = "download=True (--download for the experiments)"
"""How a caller asks a loader to download missing files, as error messages name it."""
_ANY_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the directory holding the raw data sets (``MNIST/raw``, ``yaleb``, ``dsprites``, ...)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".pyro_partial" / "data"


def _cache_base() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "pyro_partial"


def cache_dir(*parts: str) -> Path:
    """Return (and create) a writable cache directory, optionally a named sub-directory of it."""
    path = _cache_base().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def search_roots(root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The folders a loader looks in, in order: the data root and the download folder ``<cache>/data``."""
    return data_root(root), _cache_base() / "data"


def find_data_file(relative: str | os.PathLike, root: str | os.PathLike | None = None) -> Path | None:
    """The first ``<folder>/<relative>`` that is a file, over the folders of :func:`search_roots`."""
    for base in search_roots(root):
        if (base / relative).is_file():
            return base / relative
    return None


def download_root(root: str | os.PathLike | None = None) -> Path:
    """Return (and create) the folder downloads go to: the data root when files can be made in it, else
    ``<cache>/data``.

    A directory whose permission bits grant nobody write access counts as read-only even for a user
    (such as root) whom the operating system would let write there.
    """
    base = data_root(root)
    existing = next(parent for parent in (base, *base.parents) if parent.exists())
    if existing.is_dir() and os.access(existing, os.W_OK) and existing.stat().st_mode & _ANY_WRITE:
        try:
            base.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=base):
                return base
        except OSError:
            pass
    return cache_dir("data")
