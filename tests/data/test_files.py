"""Atomic file writes: the old file or the whole new one, the umask's permissions, leftovers removed."""

import os

import pytest

from pyro_partial.data.files import atomic_write, remove_stale_temporaries


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a", lambda f: f.write(b"x"))
        os.umask(0o077)
        atomic_write(tmp_path / "b", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o600


def test_temporaries_of_killed_writes_are_removed(tmp_path):
    left = [tmp_path / ".checkpoint.ckpt.abc.tmp", tmp_path / ".metrics.csv.def.tmp"]
    for path in left:
        path.write_bytes(b"partial")
    (tmp_path / "checkpoint.ckpt").write_bytes(b"kept")
    assert remove_stale_temporaries(tmp_path) == sorted(left)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.ckpt"]
