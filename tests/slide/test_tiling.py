"""Tiling at x5 / x10: grid geometry, tissue filter, read plan, real sample slides."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.errors import SlideError
from napari_higt.slide.tiling import read_tiles, thumbnail_tile, tile_slide
from napari_higt.slide.tissue import TissueMask


class FakeSlide:
    """Just what tile_slide needs: dimensions, scale and the level layout."""

    def __init__(self, dims, mpp=0.5, downsamples=(1.0,), power=None, path="fake.svs"):
        self.dimensions = dims
        self.mpp = None if mpp is None else (mpp, mpp)
        self.objective_power = power
        self.level_downsamples = tuple(downsamples)
        self.path = path
        self.slide_id = "fake"

    def require_mpp(self):
        if self.mpp is not None:
            return self.mpp
        if self.objective_power:
            return (10 / self.objective_power,) * 2
        raise SlideError(self.path, "neither pixel size nor magnification; use --mpp")

    def best_level_for_downsample(self, ds):
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= ds * 1.01:
                best = i
        return best


def _mask(cells: np.ndarray, cell_px: int, ds: float = 64.0) -> TissueMask:
    """Mask whose True blocks are the True cells of ``cells`` (cell = ``cell_px`` level-0 px)."""
    k = int(cell_px / ds)
    return TissueMask(mask=np.kron(cells, np.ones((k, k), bool)).astype(bool), downsample=ds)


def test_grid_regions_and_threshold():
    # 0.5 µm/px: x10 patch = 1024 level-0 px, x5 region = 2048; slide 5 x 3 patches + margin
    cells = np.zeros((3, 5), bool)
    cells[0, 0] = cells[0, 1] = cells[1, 1] = True  # region (0,0): 3 children
    cells[2, 4] = True  # bottom-right patch: its region (2,1) reaches past the slide
    slide = FakeSlide((5 * 1024 + 100, 3 * 1024 + 50))
    mask = _mask(np.pad(cells, ((0, 1), (0, 1))), 1024)
    t = tile_slide(slide, mask)
    g10, g5 = t.levels["x10"], t.levels["x5"]
    assert g10.size0 == 1024 and g5.size0 == 2048 and t.mpp == 0.5
    assert sorted(map(tuple, (g10.coords // 1024).tolist())) == [(0, 0), (1, 0), (1, 1), (4, 2)]
    np.testing.assert_allclose(g10.tissue, 1.0)
    assert sorted(map(tuple, (g5.coords // 2048).tolist())) == [(0, 0), (2, 1)]
    assert t.counts() == {"thumbnail": 1, "x5": 2, "x10": 4}
    # strictly above the threshold: a patch with exactly 25 % tissue is dropped
    quarter = np.zeros((8, 10), bool)
    quarter[0, 0] = True  # 1 of the 4 mask blocks of patch (0, 0)
    t2 = tile_slide(slide, _mask(quarter, 512))
    assert len(t2.levels["x10"]) == 0 and len(t2.levels["x5"]) == 0
    t3 = tile_slide(slide, _mask(quarter, 512), tissue_threshold=0.2)
    assert (t3.levels["x10"].coords // 1024).tolist() == [[0, 0]]


def test_region_with_tissue_but_no_kept_patch():
    # each of the 4 patches of region (0,0) holds 24 % tissue -> no patch; region 24 % -> no
    # region; with threshold 0.2 all 4 patches + region kept.
    m = np.zeros((50, 50), bool)
    for oy in (0, 25):
        for ox in (0, 25):
            m[oy:oy + 6, ox:ox + 25] = True  # 6/25 = 24 %
    slide = FakeSlide((1600, 1600), mpp=0.64)  # x10 = 800 px, x5 = 1600 px
    mask = TissueMask(mask=m, downsample=32.0)
    t = tile_slide(slide, mask)
    assert t.counts() == {"thumbnail": 1, "x5": 0, "x10": 0}
    t = tile_slide(slide, mask, tissue_threshold=0.2)
    assert t.counts() == {"thumbnail": 1, "x5": 1, "x10": 4}


def test_scale_sources_and_read_plan():
    full = TissueMask(mask=np.ones((64, 64), bool), downsample=256.0)
    # 40x scan, levels 1 / 4 / 16: x10 (ds 4) reads level 1 (ds 4) at 512; x5 (ds 8) reads
    # level 1 at 1024 and resizes
    s = FakeSlide((16384, 16384), mpp=0.25, downsamples=(1, 4, 16))
    t = tile_slide(s, full)
    assert (t.levels["x10"].read_level, t.levels["x10"].read_size) == (1, 512)
    assert (t.levels["x5"].read_level, t.levels["x5"].read_size) == (1, 1024)
    assert t.counts() == {"thumbnail": 1, "x5": 4 * 4, "x10": 8 * 8}  # 2048-px patches
    # objective power only: 20x -> 0.5 µm/px
    s = FakeSlide((8192, 8192), mpp=None, power=20, downsamples=(1, 2))
    t = tile_slide(s, full)
    assert t.mpp == 0.5 and t.levels["x10"].size0 == 1024 and t.levels["x10"].read_level == 1
    # stated mpp overrides; neither -> SlideError naming --mpp
    s = FakeSlide((8192, 8192), mpp=None)
    assert tile_slide(s, full, mpp=1.0).levels["x10"].size0 == 512
    with pytest.raises(SlideError, match="--mpp"):
        tile_slide(s, full)
    with pytest.raises(SlideError, match="positive"):
        tile_slide(s, full, mpp=-1.0)
    # coarser than x10: upsampled, with a warning
    t = tile_slide(FakeSlide((4096, 4096), mpp=2.0), full)
    assert t.warnings and t.levels["x10"].size0 == 256


def test_smaller_than_a_patch():
    t = tile_slide(FakeSlide((900, 700), mpp=0.5), TissueMask(np.ones((7, 9), bool), 100.0))
    assert t.counts() == {"thumbnail": 1, "x5": 0, "x10": 0}


def test_cmu1_tiles_read(cmu1_path):
    from napari_higt.slide import Slide, tissue_mask

    with Slide(cmu1_path) as s:
        t = tile_slide(s, tissue_mask(s, max_size=512))
        g10 = t.levels["x10"]
        assert g10.size0 == pytest.approx(512 / 0.499)
        assert (g10.read_level, g10.read_size) == (0, 1026)
        assert len(g10) >= 1 and len(t.levels["x5"]) == 1
        assert np.all(g10.coords[:, 0] + g10.size0 <= 2220 + 1)
        tiles = read_tiles(s, g10)
        assert tiles.shape == (len(g10), 512, 512, 3) and tiles.dtype == np.uint8
        assert tiles.mean() < 235  # tissue, not glass
        x5 = read_tiles(s, t.levels["x5"])
        assert x5.shape == (1, 512, 512, 3)
        assert t.levels["x5"].coords.tolist() == [[0, 0]]
        th = thumbnail_tile(s)
        assert th.shape == (512, 512, 3) and th[:, :20].min() >= 250  # padded left/right


def test_tile_origin_and_level_grid_follow_the_tiler():
    from napari_higt.slide.tiling import level_grid, tile_origin_at

    slide = FakeSlide((5 * 1024 + 100, 3 * 1024 + 50), downsamples=(1.0, 4.0))
    t = tile_slide(slide, _mask(np.ones((4, 6), bool), 1024))
    g10 = t.levels["x10"]
    for xy in g10.coords[[0, 5, -1]]:
        # any point inside a kept tile gives that tile's origin
        assert tile_origin_at(slide, (xy[0] + 1023.5, xy[1] + 0.2)) == tuple(xy)
    # off the slide: the nearest full tile inside it (the 100-px margin holds none)
    assert tile_origin_at(slide, (-50.0, 1e9)) == (0, 2 * 1024)
    assert tile_origin_at(slide, (5 * 1024 + 60, 10.0)) == (4 * 1024, 0)
    assert tile_origin_at(slide, (2100.0, 10.0), "x5") == (2048, 0)
    one = level_grid(slide, "x10", g10.coords[:1])
    assert (one.size0, one.read_level, one.read_size) == (g10.size0, g10.read_level,
                                                          g10.read_size)
    np.testing.assert_array_equal(one.coords, g10.coords[:1])
    np.testing.assert_array_equal(one.tissue, [1.0])
    coarse = level_grid(slide, "x10", [(0, 0)], mpp=2.0)  # 2 µm/px: 256 px, upsampled
    assert coarse.size0 == 256 and coarse.read_level == 0 and coarse.read_size == 256
