"""FeatureStore: layout, atomic writes, disk full, mismatches, CLAM/TRIDENT files."""

from __future__ import annotations

import errno

import h5py
import numpy as np
import pytest

from napari_higt.errors import FeatureError
from napari_higt.features.store import FeatureStore, source_hash


def _data(n10=5, n5=2, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    coords = {"thumbnail": np.zeros((1, 2), np.int64),
              "x5": rng.integers(0, 100, (n5, 2)) * 1024,
              "x10": rng.integers(0, 100, (n10, 2)) * 512}
    feats = {k: rng.normal(size=(len(v), dim)).astype(np.float32) for k, v in coords.items()}
    return coords, feats


def test_roundtrip_layout(tmp_path):
    coords, feats = _data()
    p = FeatureStore.write(tmp_path / "a.h5", coords, feats,
                           attrs={"extractor": "handcrafted", "extractor_config_hash": "abc",
                                  "mpp": 0.5},
                           level_attrs={"x10": {"patch_size": 512, "magnification": 10.0}})
    with h5py.File(p, "r") as h5:  # the DESIGN.md layout
        assert set(h5) == {"thumbnail", "x5", "x10"}
        assert h5["x10/coords"].dtype == np.int64 and h5["x10/features"].dtype == np.float32
        assert h5["x10"].attrs["extractor"] == "handcrafted"
        assert h5["x10"].attrs["extractor_config_hash"] == "abc"
        assert h5["x10"].attrs["patch_size"] == 512
    d = FeatureStore.read(p, extractor="handcrafted", dim=8)
    assert d.layout == "higt" and d.dim == 8 and d.extractor == "handcrafted"
    assert d.counts() == {"thumbnail": 1, "x5": 2, "x10": 5}
    for k in coords:
        np.testing.assert_array_equal(d.coords[k], coords[k])
        np.testing.assert_array_equal(d.features[k], feats[k])
    assert d.level_attrs["x10"]["magnification"] == 10.0
    assert not list(tmp_path.glob(".*.tmp"))


def test_mismatches_are_feature_errors(tmp_path):
    coords, feats = _data()
    p = FeatureStore.write(tmp_path / "a.h5", coords, feats, attrs={"extractor": "handcrafted"})
    with pytest.raises(FeatureError, match="written by the 'handcrafted' extractor, not 'cnn'"):
        FeatureStore.read(p, extractor="cnn")
    with pytest.raises(FeatureError, match="8-dim features but 1024 were expected"):
        FeatureStore.read(p, dim=1024)
    bad = dict(feats, x5=np.zeros((2, 9), np.float32))
    with pytest.raises(FeatureError, match="dims differ"):
        FeatureStore.write(tmp_path / "b.h5", coords, bad)
    with pytest.raises(FeatureError, match="3 coords"):
        FeatureStore.write(tmp_path / "b.h5", dict(coords, x5=np.zeros((3, 2))), feats)
    with pytest.raises(FeatureError, match="unknown level"):
        FeatureStore.write(tmp_path / "b.h5", {"x20": np.zeros((1, 2))}, {"x20": np.zeros((1, 2))})
    assert not (tmp_path / "b.h5").exists()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(FeatureError, match="not a readable HDF5"):
        FeatureStore.read(tmp_path / "junk.h5")
    with pytest.raises(FeatureError, match="not found"):
        FeatureStore.read(tmp_path / "missing.h5")


def test_disk_full_mid_write_leaves_old_file_intact(tmp_path, monkeypatch):
    coords, feats = _data(seed=1)
    p = FeatureStore.write(tmp_path / "a.h5", coords, feats, attrs={"extractor": "handcrafted"})
    before = p.read_bytes()

    import builtins

    from napari_higt import io

    calls = {"n": 0}

    def full_disk(path, mode="r", *args, **kwargs):  # the disk fills after half the file
        fh = builtins.open(path, mode, *args, **kwargs)
        if "w" not in mode:
            return fh
        calls["n"] += 1

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def write(self, data):
                fh.write(data[: len(data) // 2])
                fh.flush()
                raise OSError(errno.ENOSPC, "No space left on device")

        return Half()

    monkeypatch.setattr(io, "open", full_disk, raising=False)
    coords2, feats2 = _data(seed=2)
    with pytest.raises(FeatureError, match="no space left") as ei:
        FeatureStore.write(p, coords2, feats2, attrs={"extractor": "handcrafted"})
    assert isinstance(ei.value.__cause__, OSError)
    assert calls["n"] == 1
    assert p.read_bytes() == before  # the previous file is untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.h5"]  # no temp file left
    # a fresh target: nothing at all is left behind
    calls["n"] = 0
    with pytest.raises(FeatureError, match="no space left"):
        FeatureStore.write(tmp_path / "new.h5", coords2, feats2)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.h5"]
    monkeypatch.undo()
    np.testing.assert_array_equal(FeatureStore.read(p).features["x10"], feats["x10"])


def test_reads_clam_and_trident_files(tmp_path):
    with h5py.File(tmp_path / "clam.h5", "w") as h5:
        h5.create_dataset("features", data=np.ones((3, 1024), np.float32))
        c = h5.create_dataset("coords", data=np.array([[0, 0], [256, 0], [0, 256]]))
        c.attrs["patch_size"] = 256
        c.attrs["patch_level"] = 0
    d = FeatureStore.read(tmp_path / "clam.h5", extractor="anything", dim=1024)
    assert d.layout == "clam" and d.counts() == {"x10": 3}
    assert d.level_attrs["x10"]["patch_size_level0"] == 256

    with h5py.File(tmp_path / "trident.h5", "w") as h5:  # (N, 1, C) features, TRIDENT attrs
        h5.create_dataset("features", data=np.ones((2, 1, 768), np.float32))
        c = h5.create_dataset("coords", data=np.array([[0, 0], [512, 0]]))
        c.attrs["patch_size"] = 256
        c.attrs["patch_size_level0"] = 512
        c.attrs["target_magnification"] = 20
    d = FeatureStore.read(tmp_path / "trident.h5")
    assert d.features["x10"].shape == (2, 768)
    assert d.level_attrs["x10"]["patch_size_level0"] == 512
    assert d.level_attrs["x10"]["magnification"] == 20
    with pytest.raises(FeatureError, match="768-dim"):
        FeatureStore.read(tmp_path / "trident.h5", dim=1024)

    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        h5.create_dataset("other", data=[1])
    with pytest.raises(FeatureError, match="holds no features"):
        FeatureStore.read(tmp_path / "empty.h5")


def test_is_done_and_source_hash(tmp_path):
    slide = tmp_path / "s.svs"
    slide.write_bytes(b"x" * 5000)
    h1 = source_hash(slide)
    assert h1 == source_hash(slide)
    coords, feats = _data()
    p = FeatureStore.write(tmp_path / "s.h5", coords, feats,
                           attrs={"source_hash": h1, "extractor_config_hash": "cfg"})
    assert FeatureStore.is_done(p, h1, "cfg")
    assert not FeatureStore.is_done(p, h1, "other")
    assert not FeatureStore.is_done(tmp_path / "none.h5", h1, "cfg")
    slide.write_bytes(b"y" + b"x" * 4999)  # same size, new content
    assert source_hash(slide) != h1


def test_stale_temp_files_are_removed(tmp_path):
    target = tmp_path / "s.h5"
    dead = tmp_path / ".s.h5.999999999.abcd1234.tmp"  # no such pid
    dead.write_bytes(b"partial")
    assert FeatureStore.remove_stale_tmp(target) == 1
    assert not dead.exists()
