"""Where data is looked for and where downloads go."""

import os

from pyro_partial.data.paths import data_root, download_root, find_data_file, search_roots


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("PYRO_PARTIAL_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".pyro_partial" / "data"


def test_downloads_go_to_a_writable_root_and_else_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    assert download_root(tmp_path / "new" / "root") == tmp_path / "new" / "root"
    assert (tmp_path / "new" / "root").is_dir() and os.listdir(tmp_path / "new" / "root") == []
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        assert download_root(read_only) == tmp_path / "cache" / "data"
        assert download_root(read_only / "below") == tmp_path / "cache" / "data"
        assert os.listdir(read_only) == []
    finally:
        read_only.chmod(0o755)
    assert search_roots(read_only) == (read_only, tmp_path / "cache" / "data")


def test_files_are_found_in_the_root_first_then_in_the_download_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_PARTIAL_CACHE", str(tmp_path / "cache"))
    root, downloads = tmp_path / "root", tmp_path / "cache" / "data"
    assert find_data_file("set/a.bin", root) is None
    (downloads / "set").mkdir(parents=True)
    (downloads / "set" / "a.bin").write_bytes(b"downloaded")
    assert find_data_file("set/a.bin", root) == downloads / "set" / "a.bin"
    (root / "set").mkdir(parents=True)
    (root / "set" / "a.bin").write_bytes(b"local")
    assert find_data_file("set/a.bin", root) == root / "set" / "a.bin"
