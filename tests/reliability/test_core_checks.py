"""The boundary checks themselves, through the Python API (what the CLI and widgets call)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.errors import FeatureError, SlideError, StorageError
from tests.reliability.conftest import CMU, TCGA


@pytest.mark.parametrize("coords,features,words", [
    (np.zeros((3, 2)), np.array([[0, 1], [np.nan, 2], [np.inf, 0]]), "row 1 of 3 holds NaN"),
    (np.zeros((2, 2)), np.array([[0, 1], [np.inf, -np.inf]]), "row 1 of 2 holds inf"),
    (np.zeros((2, 2)), np.array([[1e39, 0], [0, 0]]), "row 0 of 2 holds inf"),  # > float32
    (np.zeros((2, 3)), np.zeros((2, 4)), "coords must be an (N, 2)"),
    (np.array([[0, np.nan]]), np.zeros((1, 4)), "coords row 0 of 1 holds NaN"),
    (np.zeros((2, 2)), np.array([["a", "b"], ["c", "d"]]), "array of numbers"),
    (np.zeros((2, 2)), np.zeros(2), "(N, C)"),
    (np.zeros((3, 2)), np.zeros((2, 4)), "3 coords but 2 feature rows"),
])
def test_checked_level_refuses(coords, features, words):
    from napari_higt.features.validate import checked_level

    with pytest.raises(FeatureError, match=r"f\.h5, level x10: .*" + words.replace("(", r"\(")
                       .replace(")", r"\)")):
        checked_level("f.h5", "x10", coords, features)


def test_checked_level_casts():
    from napari_higt.features.validate import checked_level

    c, f = checked_level("f.h5", "x5", np.array([[1.0, 2.0]]), np.ones((1, 3), np.float64))
    assert c.dtype == np.int64 and f.dtype == np.float32 and f.shape == (1, 3)
    c, f = checked_level("f.h5", "x5", np.zeros(0), np.zeros((0, 3)))
    assert c.shape == (0, 2)


def test_same_slide_rule(tmp_path):
    from napari_higt.features.provenance import check_same_slide, content_hash, source_hash

    own = {"slide_id": CMU.stem, "source_hash": source_hash(CMU), "content_hash": content_hash(CMU)}
    assert check_same_slide("a.h5", own, CMU) is None
    with pytest.raises(FeatureError, match="holds the features of slide 'cmu-1-small-region', "
                                           "not of tcga.*--force"):
        check_same_slide("a.h5", own, TCGA)
    with pytest.raises(FeatureError, match="tcga") as ei:
        check_same_slide("a.h5", own, TCGA, override=None)
    assert "--force" not in str(ei.value)
    assert "used anyway" in check_same_slide("a.h5", own, TCGA, force=True)
    # an older file records only the mtime-sensitive hash; a foreign one nothing at all
    assert check_same_slide(f"{CMU.stem}.h5", {"source_hash": own["source_hash"]}, CMU) is None
    assert check_same_slide(f"{CMU.stem}.h5", {}, CMU) is None
    with pytest.raises(FeatureError, match="another version"):
        check_same_slide("a.h5", {"slide_id": CMU.stem, "source_hash": "0" * 16}, CMU)


@pytest.mark.parametrize("mpp", [500, 0.01, 51])
def test_scale_bounds(mpp):
    from napari_higt.slide import Slide

    with pytest.raises(SlideError, match="outside 0.05-50 µm per pixel"):
        Slide(CMU, mpp=mpp)


def test_writable_folder_and_lock(tmp_path):
    from napari_higt.io import file_lock, writable_folder

    assert writable_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="is a file, not a folder"):
        writable_folder(tmp_path / "f")
    lock = tmp_path / ".x.lock"
    with file_lock(lock) as held:
        assert held and lock.exists()
        with file_lock(lock, wait=False) as again:
            assert not again  # the same file, locked through another descriptor
    assert not lock.exists()
    with file_lock(lock, wait=False) as held:
        assert held
