"""Bags from .pt and features-only .h5 files; every malformed file gets its own line."""

from __future__ import annotations

import collections

import h5py
import numpy as np
import pytest
import torch

from napari_higt.features.bags import BagError, read_bag, read_bag_folder
from tests.conftest import SHARED_DATA

COHORT = SHARED_DATA / "cohorts" / "tcga-nsclc-hipt"


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return path


def test_good_formats(tmp_path) -> None:
    x = torch.randn(7, 5)
    torch.save(x, tmp_path / "a.pt")
    torch.save({"features": x.double(), "coords": torch.zeros(7, 2)}, tmp_path / "b.pt")
    torch.save(x.to(torch.bfloat16), tmp_path / "c.pt")
    _h5(tmp_path / "d.h5", features=x.numpy())
    _h5(tmp_path / "e.h5", features=x.numpy(), coords=np.zeros((7, 2), np.int64))
    with h5py.File(tmp_path / "f.h5", "w") as f:  # the layout of napari-higt preprocess
        f["x10/features"] = x.numpy()
        f["x10/coords"] = np.zeros((7, 2), np.int64)
    folder = read_bag_folder(tmp_path)
    assert folder.bad == [] and folder.dim == 5 and list(folder.bags) == list("abcdef")
    for sid, bag in folder.bags.items():
        assert bag.features.dtype == np.float32 and bag.features.shape == (7, 5)
        tol = 1e-2 if sid == "c" else 1e-6
        np.testing.assert_allclose(bag.features, x.numpy(), atol=tol)
    assert [b.has_coords for b in folder.bags.values()] == [False] * 4 + [True, True]


class Custom:
    """Not a tensor: a pickle that weights_only loading refuses."""


BAD = {
    "one_d.pt": (lambda p: torch.save(torch.randn(5), p), "1-D array"),
    "three_d.pt": (lambda p: torch.save(torch.randn(2, 3, 4), p), "3-D array"),
    "nan.pt": (lambda p: torch.save(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), p),
               "NaN or infinite values in 1 of 2 rows"),
    "inf.h5": (lambda p: _h5(p, features=np.array([[np.inf, 0.0]], np.float32)), "infinite"),
    "no_rows.pt": (lambda p: torch.save(torch.zeros(0, 5), p), "empty bag"),
    "zero_bytes.pt": (lambda p: p.write_bytes(b""), "0 bytes"),
    "pickle.pt": (lambda p: torch.save(Custom(), p), "weights_only"),
    "a_list.pt": (lambda p: torch.save([1, 2, 3], p), "holds a list, not a tensor"),
    "no_key.pt": (lambda p: torch.save({"feats": torch.randn(2, 5)}, p),
                  "without a 'features' entry"),
    "ints.pt": (lambda p: torch.save(torch.ones(3, 5, dtype=torch.int64), p), "int64 values"),
    "garbage.pt": (lambda p: p.write_bytes(b"not a zip file at all"), "not a readable torch"),
    "junk.h5": (lambda p: p.write_bytes(b"not an hdf5 file"), "not a readable HDF5"),
    "no_features.h5": (lambda p: _h5(p, coords=np.zeros((3, 2))), "no 'features' dataset"),
    "narrow.pt": (lambda p: torch.save(torch.randn(3, 4), p), "4 features per instance, the "
                                                             "other files 5"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_malformed_file_gets_one_line(tmp_path, name: str) -> None:
    make, expected = BAD[name]
    for i in range(2):
        torch.save(torch.randn(4, 5), tmp_path / f"good{i}.pt")
    make(tmp_path / name)
    folder = read_bag_folder(tmp_path)
    assert sorted(folder.bags) == ["good0", "good1"]
    assert len(folder.bad) == 1
    line = folder.bad[0]
    assert line.startswith(f"{name}: ") and expected in line and "\n" not in line
    if name != "narrow.pt":  # the width rule needs the other files; alone it is a good bag
        with pytest.raises(BagError, match=expected.split(" ")[0]):
            read_bag(tmp_path / name)


def test_all_bad_files_listed_together_and_duplicates(tmp_path) -> None:
    for name, (make, _) in BAD.items():
        make(tmp_path / name)
    torch.save(torch.randn(3, 5), tmp_path / "twice.pt")
    _h5(tmp_path / "twice.h5", features=np.zeros((3, 5), np.float32))
    for i in range(3):
        torch.save(torch.randn(4, 5), tmp_path / f"good{i}.pt")
    folder = read_bag_folder(tmp_path)
    assert sorted(folder.bags) == ["good0", "good1", "good2"]
    named = collections.Counter(line.split(":")[0] for line in folder.bad)
    assert set(named) == set(BAD) | {"twice"} and max(named.values()) == 1
    # asking for some slides only reads those
    assert list(read_bag_folder(tmp_path, ["good2", "absent"]).bags) == ["good2"]


def test_width_check_against_a_given_dim(tmp_path) -> None:
    torch.save(torch.randn(3, 4), tmp_path / "a.pt")
    with pytest.raises(BagError, match="4 features per instance, the other files 8"):
        read_bag(tmp_path / "a.pt", dim=8)


@pytest.mark.skipif(not COHORT.is_dir(), reason="the shared TCGA cohort is not here")
def test_real_hipt_bags_load() -> None:
    ids = sorted(p.stem for p in (COHORT / "features").glob("*.pt"))[:20]
    folder = read_bag_folder(COHORT / "features", ids)
    assert folder.bad == [] and folder.dim == 192 and len(folder.bags) == 20
    assert all(not b.has_coords and b.features.shape[0] >= 1 for b in folder.bags.values())
