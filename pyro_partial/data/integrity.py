"""Errors for data files that exist but are not what a loader expects, and the zip checks that raise them.

Every such error names the file (and the archive member) and says what was expected, so that a truncated
download, a file put in the wrong place or a damaged archive is found without a debugger.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterator

_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)


class DataFileError(ValueError):
    """A data file, or a member of an archive, that is damaged or not in the expected format.

    :param path: the file, or a description of it naming the file (e.g. a cached copy and its source).
    :param problem: what is wrong, with the value found.
    :param expected: what a valid file holds.
    :param member: the member of the archive ``path`` that is damaged, if any.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        problem: str,
        *,
        expected: str | None = None,
        member: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.member = member
        where = self.path if member is None else f"{self.path}, member {member}"
        super().__init__(f"{where}: {problem}" + ("" if expected is None else f"; expected {expected}"))


@contextlib.contextmanager
def zip_errors(path: str | os.PathLike, member: str | None = None, *, expected: str) -> Iterator[None]:
    """Re-raise what :mod:`zipfile` and :mod:`zlib` raise on a truncated or corrupted archive (or member) as
    a :class:`DataFileError` naming ``path`` and ``member``."""
    try:
        yield
    except _ZIP_ERRORS as error:
        problem = f"damaged or incomplete zip data ({type(error).__name__}: {error})"
        raise DataFileError(path, problem, expected=expected, member=member) from error


def check_zip(path: str | os.PathLike, *, expected: str) -> None:
    """Read every member of the zip archive at ``path`` to its end, which checks each member's CRC-32.

    :raises DataFileError: for a truncated archive (no central directory) or a damaged member.
    """
    with zip_errors(path, expected=expected), zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with zip_errors(path, info.filename, expected=expected), archive.open(info) as stream:
                while stream.read(1 << 20):
                    pass
