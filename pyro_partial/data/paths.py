"""Where data sets are read from and where derived files are cached.

Resolution order for the data root: an explicit ``root`` argument, then the ``PYRO_PARTIAL_DATA``
environment variable, then ``~/.pyro_partial/data`` (where loaders that may download put files).
Derived files (decompressed archives, re-rendered images) go to ``PYRO_PARTIAL_CACHE`` or
``~/.cache/pyro_partial``; the data root itself may be read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PYRO_PARTIAL_DATA"
CACHE_ENV = "PYRO_PARTIAL_CACHE"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the directory holding the raw data sets (``MNIST/raw``, ``yaleb``, ``dsprites``, ...)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".pyro_partial" / "data"


def cache_dir(*parts: str) -> Path:
    """Return (and create) a writable cache directory, optionally a named sub-directory of it."""
    base = (
        Path(os.environ[CACHE_ENV]).expanduser()
        if os.environ.get(CACHE_ENV)
        else (Path.home() / ".cache" / "pyro_partial")
    )
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
