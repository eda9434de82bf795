"""TRIDENT-compatible files: the layout TRIDENT writes, read back with its attributes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_higt.errors import FeatureError
from napari_higt.features.store import FeatureStore, read_graph
from napari_higt.features.trident import magnification, trident_coords_attrs, write_trident


def _grid(step: int, cols: int, rows: int) -> np.ndarray:
    return np.array([(x * step, y * step) for y in range(rows) for x in range(cols)], np.int64)


def test_round_trip_of_coords_features_and_attrs(tmp_path):
    # patches of 1026 level-0 px, every second one kept: the coordinates alone (gcd 2052)
    # would tell the wrong patch size
    coords = _grid(1026, 6, 3)[::2]
    feats = np.random.default_rng(0).normal(size=(len(coords), 16)).astype(np.float32)
    ca = trident_coords_attrs("slideA", 512, 1026.05, slide_mpp=0.499, target_mpp=1.0,
                              out_dir=tmp_path)
    assert ca == {"patch_size": 512, "patch_size_level0": 1026, "level0_magnification": 20,
                  "target_magnification": 10, "overlap": 0, "name": "slideA",
                  "savetodir": str(tmp_path)}
    p = write_trident(tmp_path / "slideA.h5", coords, feats, ca,
                      attrs={"extractor": "handcrafted", "extractor_config_hash": "h1"})
    with h5py.File(p, "r") as h5:  # what TRIDENT's readers open
        assert set(h5) == {"coords", "features"}
        assert h5["features"].shape == (9, 16) and h5["coords"].dtype == np.int64
        assert dict(h5["coords"].attrs) == ca
        assert h5["features"].attrs["name"] == "slideA"
    d = FeatureStore.read(p, extractor="handcrafted", dim=16)
    assert d.layout == "clam" and d.attrs["extractor_config_hash"] == "h1"
    np.testing.assert_array_equal(d.coords["x10"], coords)
    np.testing.assert_array_equal(d.features["x10"], feats)
    la = d.level_attrs["x10"]
    assert (la["patch_size_level0"], la["level0_magnification"], la["magnification"],
            la["name"]) == (1026, 20, 10, "slideA")
    g = read_graph(p)
    assert g.patch_size["x10"] == 1026.0  # recorded, not the gcd of the coordinates (2052)
    assert g.counts()["x10"] == 9


def test_patch_size_level0_from_trident_magnifications(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as h5:  # an older TRIDENT coords file
        h5.create_dataset("features", data=np.ones((2, 4), np.float32))
        c = h5.create_dataset("coords", data=np.array([[0, 0], [1024, 0]]))
        c.attrs.update({"patch_size": 256, "level0_magnification": 40,
                        "target_magnification": 10})
    assert FeatureStore.read(tmp_path / "t.h5").level_attrs["x10"]["patch_size_level0"] == 1024


def test_bad_input(tmp_path):
    with pytest.raises(FeatureError, match="3 coords but features of shape"):
        write_trident(tmp_path / "x.h5", np.zeros((3, 2)), np.zeros((2, 4)),
                      {"patch_size_level0": 512})
    with pytest.raises(FeatureError, match="patch_size_level0"):
        write_trident(tmp_path / "x.h5", np.zeros((2, 2)), np.zeros((2, 4)), {"patch_size": 5})
    assert not list(tmp_path.iterdir())
    assert magnification(0.25) == 40 and magnification(0.499) == 20 and magnification(0.3) == 33.333
