"""compute_patch_entities: the x10 patch of a real slide, its entities, cancel."""

import numpy as np
import pytest

from napari_higt.errors import Cancelled
from napari_higt.features.patch_entities import compute_patch_entities
from napari_higt.slide import Slide
from napari_higt.slide.tiling import read_tiles, tile_slide


def test_patch_entities_of_a_tiled_slide(tiled_tiff):
    with Slide(tiled_tiff) as s:  # 0.5 µm/px: an x10 patch is 1024 level-0 px
        t = tile_slide(s)
        g10 = t.levels["x10"]
        want = read_tiles(s, g10, [0])[0]
    res = compute_patch_entities(tiled_tiff, None, tuple(g10.coords[0]), 60, 10.0)
    assert res.size0 == g10.size0 == 1024 and res.origin == tuple(g10.coords[0])
    np.testing.assert_array_equal(res.rgb, want)  # the very tile the tiler reads
    n = res.graph.num_nodes
    assert 2 <= n <= 120 and res.graph.label_image.shape == (512, 512)
    assert res.graph.label_image.max() == n - 1
    assert res.error is None and res.mask is None and res.note == ""


def test_patch_entities_cancel(tiled_tiff):
    with pytest.raises(Cancelled):
        compute_patch_entities(tiled_tiff, None, (0, 0), 60, 10.0, cancel=lambda: True)
