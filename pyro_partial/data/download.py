"""Finding data files, and downloading the missing ones: URLs tried in order, checksums, no partial files.

A :class:`RemoteFile` names a file and the URLs it can be fetched from, best first. Loaders build theirs
from torchvision's own tables where torchvision has the data set (``torchvision.datasets.MNIST.mirrors``
and ``.resources``, ``FashionMNIST``'s, ``SVHN.split_list``) and from module-level URL tuples otherwise
(``pyro_partial.data.yaleb.URLS``, ``pyro_partial.data.dsprites.NPZ_URLS`` and ``GIF_URLS``); replacing
those attributes (for a local mirror, or in tests) changes where files are fetched from.

:func:`download_file` fetches with torchvision's downloader (``torchvision.datasets.utils.download_url``)
into a hidden staging folder beside the target, checks the md5 when one is known and the file's format
when a check is given, and only then moves the file into place. A failed, truncated or corrupted download
is deleted, so the data folder never holds a partial file.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, download_url

from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.paths import DATA_ENV, DOWNLOAD_FLAG, download_root, find_data_file, search_roots

_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError, RecursionError)
"""What fetching a URL raises: URLError and connection errors (OSError), broken HTTP responses, unknown
URL schemes (ValueError) and redirect loops (torchvision's RecursionError)."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A data file that can be downloaded.

    :param name: the file name it is saved under.
    :param urls: full URLs of the file, tried in order until one gives a valid file.
    :param md5: its published md5, or ``None`` when none is published (then only ``verify`` checks it).
    :param verify: a check of the downloaded file's format, raising :class:`DataFileError` (what it returns
        is ignored).
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    verify: Callable[[Path], object] | None = None


class DownloadError(RuntimeError):
    """No URL of a :class:`RemoteFile` gave a valid file; the message lists what each one gave."""


def download_file(remote: RemoteFile, directory: str | os.PathLike) -> Path:
    """Download ``remote`` to ``directory / remote.name`` and return that path.

    :raises DownloadError: when every URL fails, gives a file whose md5 differs from ``remote.md5`` or one
        that ``remote.verify`` rejects; nothing is left in ``directory`` then.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.name
    failures = []
    for url in remote.urls:
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{remote.name}.", suffix=".download"))
        try:
            download_url(url, str(staging), remote.name)
            problem = _problem(staging / remote.name, remote)
            if problem is None:
                os.replace(staging / remote.name, target)
                return target
            failures.append(f"{url} gave {problem}")
        except _NETWORK_ERRORS as error:
            failures.append(f"{url} failed ({type(error).__name__}: {error})")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    tried = "; ".join(failures) if failures else "no URL to try"
    raise DownloadError(f"could not download {remote.name} into {directory}: {tried}. Nothing was kept.")


def _problem(path: Path, remote: RemoteFile) -> str | None:
    """What is wrong with a downloaded file, or ``None`` when it passes the md5 and format checks."""
    size = path.stat().st_size
    if remote.md5 is not None:
        md5 = calculate_md5(path)
        if md5 != remote.md5:
            return f"{size} bytes with md5 {md5}, expected md5 {remote.md5} (truncated or corrupted)"
    if remote.verify is not None:
        try:
            remote.verify(path)
        except DataFileError as error:
            return f"{size} bytes that are not a valid file: {error}"
    return None


def missing_files_error(
    dataset: str, names: Sequence[str], folders: tuple[Path, Path], sources: Sequence[str], hint: str = ""
) -> FileNotFoundError:
    """The error for data files found in neither of ``folders`` (the folder of the data root, then the same
    folder of the download folder): it names the files, the folders, where ``download=True`` would fetch
    them from and where it would put them, then ``hint``."""
    data_folder, download_folder = folders
    return FileNotFoundError(
        f"{dataset} not found: missing {', '.join(names)}; looked in {data_folder} and {download_folder}. "
        f"Set the data root with the root argument or the {DATA_ENV} environment variable, or pass "
        f"{DOWNLOAD_FLAG} to download from {', '.join(sources)} into {data_folder} (into {download_folder} "
        f"when the data root is read-only).{hint}"
    )


def find_or_download(
    relative: str | os.PathLike,
    remote: RemoteFile,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    dataset: str,
    hint: str = "",
) -> Path:
    """The path of ``<folder>/<relative>`` for the first folder of
    :func:`~pyro_partial.data.paths.search_roots` that has it; else, with ``download``, the path
    ``remote`` is downloaded to (under :func:`~pyro_partial.data.paths.download_root`).

    :param relative: the file's path under the data root, e.g. ``"yaleb/CroppedYale.zip"``; its name is
        ``remote.name``.
    :param dataset: the data set's name, for the error message.
    :param hint: a sentence (with a leading space) ending the error message, e.g. an alternative.
    :raises FileNotFoundError: when the file is missing and ``download`` is false.
    """
    relative = Path(relative)
    path = find_data_file(relative, root)
    if path is not None:
        return path
    if not download:
        data_folder, download_folder = (base / relative.parent for base in search_roots(root))
        raise missing_files_error(dataset, [relative.name], (data_folder, download_folder), remote.urls, hint)
    return download_file(remote, download_root(root) / relative.parent)
