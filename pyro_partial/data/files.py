"""Files written atomically: a temporary file beside the target, renamed over it once complete.

Readers see the old file or the whole new one, never a truncated file; a killed write leaves only its
temporary file (``.<name>.<random>.tmp``), which :func:`remove_stale_temporaries` deletes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a truncated file. The file gets the permissions
    of a newly created file under the process's umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write` calls left in ``directory`` (call it before
    a run starts writing there); return their paths."""
    removed = []
    for path in Path(directory).glob(f".*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return sorted(removed)
