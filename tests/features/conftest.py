"""Slides of a known tissue layout for the preprocessing tests (real tissue pixels)."""

from __future__ import annotations

import numpy as np
import pytest

#: Tissue cells of a 6 x 8 grid of 128-px cells (row = y, col = x). With 0.5 µm/px and
#: ``patch_size=64`` an x10 patch is exactly one cell (128 level-0 px) and an x5 region 2 x 2.
LAYOUT = np.array([
    [1, 1, 0, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 1, 0, 1, 0],
    [0, 0, 0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 1],
], bool)
CELL = 128
LAYOUT_MPP = 0.5
PATCH = 64


def layout_rgb(tissue_rgb: np.ndarray, layout: np.ndarray = LAYOUT, cell: int = CELL) -> np.ndarray:
    h, w = layout.shape
    out = np.full((h * cell, w * cell, 3), 246, np.uint8)  # glass
    for y, x in zip(*np.nonzero(layout)):
        oy, ox = (y * 97) % (1024 - cell), (x * 131) % (1024 - cell)
        out[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell] = tissue_rgb[oy:oy + cell, ox:ox + cell]
    return out


@pytest.fixture(scope="session")
def layout_slide(tmp_path_factory, tissue_rgb):
    """A 1024 x 768 px, 0.5 µm/px pyramidal TIFF whose tissue follows ``LAYOUT``."""
    from napari_higt.slide.writer import write_pyramidal_tiff

    path = tmp_path_factory.mktemp("layout") / "layout.tif"
    return write_pyramidal_tiff(path, layout_rgb(tissue_rgb), mpp=LAYOUT_MPP, tile=128,
                                min_size=128, compression="zlib")


@pytest.fixture(scope="session")
def blank_slide(tmp_path_factory):
    from napari_higt.slide.writer import write_pyramidal_tiff

    path = tmp_path_factory.mktemp("blank") / "blank.tif"
    return write_pyramidal_tiff(path, np.full((768, 1024, 3), 246, np.uint8), mpp=0.5, tile=128,
                                min_size=128, compression="zlib")
