import numpy as np
import pytest

from napari_higt.slide import Slide, tissue_mask
from napari_higt.slide.tissue import TissueMask, tissue_mask_from_rgb


def test_cmu1_tissue_mask(cmu1_path):
    with Slide(cmu1_path) as s:
        tm = tissue_mask(s, max_size=512)
    assert tm.mask.dtype == bool and max(tm.mask.shape) == 512
    assert tm.downsample == pytest.approx(2220 / tm.mask.shape[1])
    assert 0.2 < tm.fraction < 0.95


def test_tcga_section_mask_is_a_minority_of_the_glass(tcga_path):
    with Slide(tcga_path) as s:
        tm = tissue_mask(s, max_size=1024)
    assert 0.05 < tm.fraction < 0.8


def test_blank_slide_has_no_tissue():
    rng = np.random.default_rng(0)
    glass = np.clip(240 + rng.normal(0, 3, (256, 256, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask_from_rgb(glass).any()
    assert not tissue_mask_from_rgb(np.full((64, 64, 3), 255, np.uint8)).any()


def test_tissue_on_glass_found(tissue_rgb):
    canvas = np.full((1024, 2048, 3), 245, np.uint8)
    canvas[:, :1024] = tissue_rgb
    mask = tissue_mask_from_rgb(canvas[::4, ::4])
    assert mask[:, :200].mean() > 0.5
    assert mask[:, 300:].mean() < 0.02


def test_region_fraction():
    m = np.zeros((10, 10), bool)
    m[:5, :5] = True
    tm = TissueMask(mask=m, downsample=100.0)
    frac = tm.region_fraction(np.array([[0, 0], [500, 500], [300, 0], [900, 900]]), 500)
    # 3..7 x 0..4 overlaps the tissue block in columns 3 and 4: 10 of 25 pixels.
    np.testing.assert_allclose(frac, [1.0, 0.0, 0.4, 0.0])
