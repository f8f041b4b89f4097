"""download_file against a local HTTP server: mirrors in order, md5 and format checks, no partial files."""

import hashlib

import pytest

from pyro_partial.data.download import DownloadError, RemoteFile, download_file, find_or_download
from pyro_partial.data.integrity import DataFileError

DATA = bytes(range(256)) * 64


def _md5(data):
    return hashlib.md5(data).hexdigest()


def _left_behind(directory):
    return sorted(path.name for path in directory.iterdir())


def test_downloads_from_the_first_working_mirror(local_server, tmp_path):
    url = local_server.add("b/file.bin", DATA)
    remote = RemoteFile("file.bin", (local_server.url + "a/file.bin", url), md5=_md5(DATA))
    path = download_file(remote, tmp_path / "out")
    assert path == tmp_path / "out" / "file.bin" and path.read_bytes() == DATA
    assert _left_behind(tmp_path / "out") == ["file.bin"]
    assert [request for request in local_server.requests if request.endswith(".bin")][0] == "/a/file.bin"


def test_wrong_md5_is_an_error_naming_both_checksums_and_keeps_nothing(local_server, tmp_path):
    url = local_server.add("file.bin", DATA)
    remote = RemoteFile("file.bin", (url,), md5="0" * 32)
    with pytest.raises(DownloadError) as info:
        download_file(remote, tmp_path)
    message = str(info.value)
    assert (
        url in message and "0" * 32 in message and _md5(DATA) in message and f"{len(DATA)} bytes" in message
    )
    assert _left_behind(tmp_path) == []


def test_truncated_download_is_an_error_and_keeps_nothing(local_server, tmp_path):
    url = local_server.add("file.bin", DATA)
    local_server.truncate("file.bin")
    with pytest.raises(DownloadError, match="truncated or corrupted") as info:
        download_file(RemoteFile("file.bin", (url,), md5=_md5(DATA)), tmp_path)
    assert f"{len(DATA) // 2} bytes" in str(info.value)
    assert _left_behind(tmp_path) == []


def test_format_check_for_files_without_checksum(local_server, tmp_path):
    url = local_server.add("file.bin", DATA)

    def verify(path):
        raise DataFileError(path, "not the expected format", expected="something else")

    with pytest.raises(DownloadError, match="not the expected format; expected something else"):
        download_file(RemoteFile("file.bin", (url,), verify=verify), tmp_path)
    assert _left_behind(tmp_path) == []


def test_every_failing_mirror_is_listed(local_server, tmp_path):
    urls = (local_server.url + "missing-1.bin", local_server.url + "missing-2.bin")
    with pytest.raises(DownloadError) as info:
        download_file(RemoteFile("file.bin", urls), tmp_path)
    message = str(info.value)
    assert all(url in message for url in urls) and "404" in message and str(tmp_path) in message
    assert _left_behind(tmp_path) == []


def test_find_or_download_prefers_existing_files(local_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    url = local_server.add("file.bin", DATA)
    remote = RemoteFile("file.bin", (url,), md5=_md5(DATA))
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError) as info:
        find_or_download("set/file.bin", remote, root, dataset="Set")
    message = str(info.value)
    assert "Set not found: missing file.bin" in message and str(root / "set") in message
    assert str(tmp_path / "cache" / "data" / "set") in message and url in message
    assert "download=True" in message and "--download" in message
    assert local_server.requests == []
    path = find_or_download("set/file.bin", remote, root, download=True, dataset="Set")
    assert path == root / "set" / "file.bin" and path.read_bytes() == DATA
    requests = len(local_server.requests)
    assert find_or_download("set/file.bin", remote, root, download=True, dataset="Set") == path
    assert len(local_server.requests) == requests
