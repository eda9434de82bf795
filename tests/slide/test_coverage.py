"""Tissue that no tile covers is found, so the viewer can mark it instead of leaving it blank."""

import numpy as np

from napari_higt.slide import Slide
from napari_higt.slide.coverage import edge_strip_tissue
from napari_higt.slide.tiling import tile_slide
from napari_higt.slide.tissue import TissueMask, mask_size_for, tissue_mask


def test_edge_strip_of_the_tcga_section(tcga_path):
    """At 1.0 µm/px the TCGA section is 8.7 x 7.0 tiles wide: its right and bottom strips
    hold tissue that no x10 patch reads; every tissue pixel is either under a kept patch,
    in a tile below the tissue threshold, or in the strip that is marked."""
    with Slide(tcga_path, mpp=1.0) as s:
        tiling = tile_slide(s, tissue_threshold=0.25)
        size = tiling.levels["x10"].size0
        mask = tissue_mask(s, max_size=mask_size_for(s.dimensions, size))
        strip = edge_strip_tissue(mask, size, s.dimensions)
        w, h = s.dimensions
    assert strip.downsample == mask.downsample and strip.mask.shape == mask.mask.shape
    assert strip.mask.any() and not (strip.mask & ~mask.mask).any()
    ys, xs = np.nonzero(mask.mask)
    cx, cy = (xs + 0.5) * mask.downsample, (ys + 0.5) * mask.downsample
    x_end, y_end = (w // size) * size, (h // size) * size
    beyond = (cx >= x_end) | (cy >= y_end)
    np.testing.assert_array_equal(strip.mask[ys, xs], beyond)
    assert (cx[beyond] >= x_end).any() and (cy[beyond] >= y_end).any()  # right and bottom
    # Inside the grid, tissue is covered by a kept patch or lies in a low-tissue tile.
    kept = {tuple(c) for c in (tiling.levels["x10"].coords // size).astype(int)}
    inside = ~beyond
    cells = np.stack([cx[inside] // size, cy[inside] // size], 1).astype(int)
    covered = np.array([tuple(c) in kept for c in cells])
    assert covered.mean() > 0.8


def test_no_strip_when_the_slide_is_whole_tiles():
    mask = TissueMask(mask=np.ones((64, 64), bool), downsample=8.0)  # 512 x 512 px
    assert not edge_strip_tissue(mask, 256.0, (512, 512)).mask.any()
    part = edge_strip_tissue(mask, 200.0, (512, 512)).mask  # 2 whole tiles: 112 px left over
    assert part[:, -1].all() and part[-1].all() and not part[:50, :50].any()
