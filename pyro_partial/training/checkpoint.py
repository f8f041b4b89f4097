"""Checkpoint files that are written atomically and loaded without running code.

:class:`AtomicCheckpointIO` is the Lightning checkpoint plugin of the training engine: a checkpoint is written
to a temporary file beside its path, flushed to disk and renamed over the path (a crash leaves the old file or
the new one, never a truncated file), and read with ``torch.load(weights_only=True)``, so a crafted file
cannot execute code. Everything a checkpoint holds must therefore be tensors or plain Python values: the
random number generator states are stored as tensors and plain tuples (:func:`rng_state`).
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import CheckpointIO

from pyro_partial.data.files import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupted, or holding objects other than data."""


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; every failure names the file.

    :raises FileNotFoundError: no file at ``path``.
    :raises CheckpointError: the file is empty, truncated, not a torch file, or holds objects other than
        tensors and plain Python values (a crafted pickle is refused, never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); expected a torch.save file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its end record is lost when cut
        raise CheckpointError(f"checkpoint {path} ({size} bytes) is truncated or not a torch.save file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = [line for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain values, refused by "
            f"torch.load(weights_only=True) and not run{': ' + refused[0] if refused else ''}"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a torch.save file: {error}"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


class AtomicCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O with atomic writes and ``weights_only`` reads (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` with ``torch.save``, atomically; ``storage_options`` must be
        ``None``."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(
        self, path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read ``path`` with :func:`load_checkpoint_file` (on the CPU unless ``map_location`` says
        otherwise); ``weights_only=False`` is refused."""
        if weights_only is False:
            raise ValueError(f"{type(self).__name__} reads checkpoints with weights_only=True only")
        return load_checkpoint_file(path, "cpu" if map_location is None else map_location)

    def remove_checkpoint(self, path) -> None:
        """Delete the file at ``path``, if there is one."""
        Path(path).unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's (legacy global) and torch's CPU and CUDA generators, as tensors and
    plain values (loadable with ``weights_only=True``)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state` (CUDA ones where saved and present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        (saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
