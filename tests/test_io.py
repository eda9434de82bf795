"""napari_higt.io: atomic writes, the full-disk / read-only messages, digests, stale temps."""

import errno
import hashlib
import os

import pytest

from napari_higt import io
from napari_higt.errors import StorageError, UserFacingError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    io.atomic_write_text(target, "one")
    io.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_error_in_block_keeps_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_full_disk_names_folder_and_size(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(StorageError) as ei:
        io.atomic_write_bytes(tmp_path / "big.bin", b"x" * 3_000_000)
    msg = str(ei.value)
    assert isinstance(ei.value, UserFacingError) and isinstance(ei.value, OSError)
    assert "no space left" in msg and str(tmp_path) in msg and "3.0 MB needed" in msg
    assert isinstance(ei.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_folder_message(tmp_path, monkeypatch, code):
    def refuse(self, *a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io.Path, "touch", refuse)
    with pytest.raises(StorageError, match="read-only or not writable") as ei:
        io.atomic_write_text(tmp_path / "a.txt", "x", what="the report")
    assert "the report" in str(ei.value) and str(tmp_path) in str(ei.value)


def test_keep_suffix_and_stale_temp_cleanup(tmp_path):
    target = tmp_path / "shot.png"
    with io.atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    dead = tmp_path / ".shot.png.999999999.abcd1234.tmp.png"  # no such pid
    live = tmp_path / f".shot.png.{os.getpid()}.abcd1234.tmp"
    dead.write_bytes(b"")
    live.write_bytes(b"")
    assert io.remove_stale_tmp(target) == 1
    assert not dead.exists() and live.exists() and target.read_bytes() == b"png"


def test_file_digest(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(5_000_000))
    full = hashlib.sha1(f.read_bytes()).hexdigest()
    assert io.file_digest(f) == full
    assert io.file_digest(f, 16) == full[:16]


def test_state_dict_helpers_strip_wrappers_and_name_every_difference():
    import numpy as np

    from napari_higt.io import state_dict_mismatch, strip_wrapper_prefixes

    want = {"a.weight": np.zeros((4, 2)), "a.bias": np.zeros(4), "b.weight": np.zeros(3)}
    wrapped = {f"module.model.{k}": v for k, v in want.items()}
    assert strip_wrapper_prefixes(wrapped, set(want)).keys() == want.keys()
    # keys that already meet the model's, or share no known prefix, stay as they are
    assert strip_wrapper_prefixes(dict(want), set(want)).keys() == want.keys()
    assert set(strip_wrapper_prefixes({"x.y": 1}, set(want))) == {"x.y"}
    assert state_dict_mismatch(want, dict(want)) == []
    got = {"a.weight": np.zeros((4, 3)), "b.weight": np.zeros(3), "c": np.zeros(1)}
    assert state_dict_mismatch(want, got) == [
        "1 missing (a.bias)", "1 unexpected (c)",
        "1 of another shape (a.weight: file (4, 3) vs model (4, 2))"]
