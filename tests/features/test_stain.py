"""Stain normalisation (torchstain Macenko / Reinhard) on real H&E images."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchstain")

from napari_higt.errors import FeatureError  # noqa: E402
from napari_higt.features import config_hash, get_extractor  # noqa: E402
from napari_higt.features.stain import StainNormalizer, stain_fraction, with_stain  # noqa: E402

IMAGES = ("breast_he_target.png", "tcga_lung_he.png")


@pytest.fixture(scope="module")
def he_images(request):
    from PIL import Image

    from tests.conftest import SHARED_DATA

    paths = [SHARED_DATA / "images" / n for n in IMAGES]
    if not all(p.is_file() for p in paths):
        pytest.skip("../shared/data/images not available")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def _mean_lab_distance(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.color import rgb2lab

    return float(np.linalg.norm(rgb2lab(a).reshape(-1, 3).mean(0)
                                - rgb2lab(b).reshape(-1, 3).mean(0)))


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_real_he_tiles_move_towards_the_reference(he_images, method):
    from PIL import Image

    from napari_higt.datasets import sample_path

    ref = np.asarray(Image.open(sample_path("stain_reference.png")).convert("RGB"))
    norm = StainNormalizer(method)
    for img in he_images:
        tile = np.ascontiguousarray(img[:256, :256])
        out = norm(tile[None])[0]
        assert out.dtype == np.uint8 and out.shape == tile.shape
        assert not np.array_equal(out, tile)
        assert _mean_lab_distance(out, ref) < _mean_lab_distance(tile, ref)
    assert norm.seen == 2 and norm.passed == 0


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_background_and_pen_pass_through_and_are_counted(he_images, method):
    glass = np.full((128, 128, 3), 238, np.uint8)
    glass[::7, ::5] = 225  # a little noise, still no stain
    pen = np.zeros((128, 128, 3), np.uint8)
    pen[...] = (35, 110, 190)  # blue marker ink
    tissue = np.ascontiguousarray(he_images[1][:128, :128])
    norm = StainNormalizer(method)
    out = norm(np.stack([glass, pen, tissue]))
    np.testing.assert_array_equal(out[0], glass)
    np.testing.assert_array_equal(out[1], pen)
    assert not np.array_equal(out[2], tissue)
    assert (norm.seen, norm.passed) == (3, 2)
    assert "2 of 3 tiles" in norm.report()
    assert stain_fraction(glass) == 0.0 and stain_fraction(pen) == 0.0


def test_bad_reference_and_method_are_refused(tmp_path):
    with pytest.raises(FeatureError, match="unknown stain method 'vahadane'"):
        StainNormalizer("vahadane")
    with pytest.raises(FeatureError, match="too little H&E stain"):
        StainNormalizer("macenko", reference=np.full((64, 64, 3), 240, np.uint8))
    bad = tmp_path / "ref.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(FeatureError, match="cannot read stain reference"):
        StainNormalizer("reinhard", reference=bad)


def test_the_stain_goes_into_the_extractor_config_and_hash():
    ext = get_extractor("handcrafted")
    assert with_stain(ext, "none") is ext
    stained = with_stain(ext, "macenko")
    assert stained.name == ext.name and stained.dim == ext.dim
    assert stained.config["stain"]["method"] == "macenko"
    assert len(stained.config["stain"]["reference_sha1"]) == 16
    assert config_hash(stained) != config_hash(ext)
    assert config_hash(stained) != config_hash(with_stain(ext, "reinhard"))
