"""Tissue that no tile covers: the strips past the last whole tile of the grid.

Tiles lie on a grid from (0, 0) and must fit inside the slide (`slide.tiling`), so a slide
whose width or height is not a whole number of tiles keeps a strip along its right and
bottom edges that no patch reads. Tissue there gets no node and hence no score; painting it
like low-score tissue would tell a pathologist "unimportant" where the truth is "not looked
at". `edge_strip_tissue` finds that tissue so the viewer and the figures can mark it.
"""

from __future__ import annotations

import math

import numpy as np

from napari_higt.slide.tissue import TissueMask

__all__ = ["edge_strip_tissue"]


def edge_strip_tissue(mask: TissueMask, tile_size0: float,
                      dimensions: tuple[int, int]) -> TissueMask:
    """Tissue in the strips of a slide past its last whole ``tile_size0`` tile.

    Parameters
    ----------
    mask : the slide's tissue mask
    tile_size0 : side of the finest tiles (x10 patches) in level-0 px
    dimensions : (width, height) of the slide in level-0 px

    Returns
    -------
    TissueMask
        On ``mask``'s grid: True where a mask pixel is tissue and its centre lies right of
        the last whole tile column or below the last whole tile row.
    """
    if tile_size0 <= 0:
        raise ValueError(f"tile_size0 must be positive, got {tile_size0}")
    w, h = dimensions
    # As in `slide.tiling.tile_slide`: whole tiles only.
    x_end = math.floor(w / tile_size0 + 1e-6) * tile_size0
    y_end = math.floor(h / tile_size0 + 1e-6) * tile_size0
    mh, mw = mask.mask.shape
    cx = (np.arange(mw) + 0.5) * mask.downsample
    cy = (np.arange(mh) + 0.5) * mask.downsample
    outside = (cx[None, :] >= x_end) | (cy[:, None] >= y_end)
    return TissueMask(mask=np.asarray(mask.mask, bool) & outside, downsample=mask.downsample)
