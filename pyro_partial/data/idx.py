"""The IDX format of MNIST and Fashion-MNIST (LeCun et al.): a header checked against the file's size.

An IDX file starts with a 4-byte magic number: two zero bytes, a type code (``0x08`` for unsigned bytes)
and the number of dimensions ``D``; then ``D`` big-endian 32-bit sizes, then the data in C order. MNIST's
image files have magic number ``0x00000803`` (2051) and sizes ``(N, 28, 28)``; its label files
``0x00000801`` (2049) and ``(N,)``.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from pyro_partial.data.integrity import DataFileError

UBYTE = 0x08


def magic_number(ndim: int, type_code: int = UBYTE) -> int:
    """The magic number of an IDX file of ``ndim`` dimensions and element type ``type_code``."""
    return type_code << 8 | ndim


def read_idx_shape(path: str | os.PathLike, ndim: int, *, name: str | None = None) -> tuple[int, ...]:
    """Check that ``path`` is a complete IDX file of unsigned bytes with ``ndim`` dimensions; return them.

    :param name: how errors name the file (default: ``path``), e.g. to say it is a cached copy.
    :raises DataFileError: for a wrong magic number, a short header, or a size other than the header's
        ``4 + 4 * ndim + prod(sizes)`` bytes.
    """
    name = os.fspath(path) if name is None else name
    expected_magic = magic_number(ndim)
    kind = f"an IDX file of unsigned bytes with {ndim} dimension(s), magic number {expected_magic:#010x}"
    header_size = 4 + 4 * ndim
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        header = stream.read(header_size)
    if len(header) < header_size:
        raise DataFileError(name, f"only {size} bytes, shorter than the IDX header", expected=kind)
    (magic,) = struct.unpack(">I", header[:4])
    if magic != expected_magic:
        raise DataFileError(name, f"magic number {magic:#010x} ({header[:4]!r})", expected=kind)
    shape = struct.unpack(f">{ndim}I", header[4:])
    expected_size = header_size + math.prod(shape)
    if size != expected_size:
        state = "truncated" if size < expected_size else "longer than its header says"
        raise DataFileError(
            name,
            f"{state}: the header gives sizes {shape}, so {expected_size} bytes, but the file has {size}",
            expected=kind,
        )
    return shape


def read_idx_bytes(path: str | os.PathLike, ndim: int, *, name: str | None = None) -> np.ndarray:
    """The data of a checked IDX file of unsigned bytes (see :func:`read_idx_shape`) as a uint8 array."""
    shape = read_idx_shape(path, ndim, name=name)
    data = np.fromfile(path, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(shape)
