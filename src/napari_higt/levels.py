"""The three levels of a slide graph: names, ids, scale and tile geometry, defined once.

* ``thumbnail`` (id 0): the whole slide as one node;
* ``x5`` (id 1): regions, ``PATCH_SIZE`` px at 2.0 µm/px (1024 µm on a side);
* ``x10`` (id 2): patches, ``PATCH_SIZE`` px at 1.0 µm/px (512 µm on a side).

Tiles are ``patch_size`` px at their level's scale, so ``patch_size * target_mpp /
slide_mpp`` level-0 px on a side (`tile_size0`); coordinates are level-0 px (x, y) of the
top-left corner on a grid that starts at (0, 0) (`grid_origin`).
"""

from __future__ import annotations

import math

__all__ = ["THUMBNAIL", "REGION", "PATCH", "LEVELS", "LEVEL_IDS", "TILED_LEVELS",
           "TARGET_MPP", "PATCH_SIZE", "tile_size0", "grid_origin"]

THUMBNAIL = "thumbnail"
REGION = "x5"
PATCH = "x10"
#: Level names by id, coarse to fine (the node ``level`` of a graph indexes this).
LEVELS: tuple[str, ...] = (THUMBNAIL, REGION, PATCH)
LEVEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
#: Levels cut into tiles on a grid (the thumbnail is the whole slide), coarse to fine.
TILED_LEVELS: tuple[str, ...] = (REGION, PATCH)
#: µm per pixel of the tiles of each tiled level.
TARGET_MPP: dict[str, float] = {REGION: 2.0, PATCH: 1.0}
#: Tile side in px at the level's own scale (as in HIGT).
PATCH_SIZE = 512


def tile_size0(level: str, slide_mpp: float, patch_size: int = PATCH_SIZE) -> float:
    """Side of one tile of ``level`` in level-0 px of a slide of ``slide_mpp`` µm/px."""
    return patch_size * TARGET_MPP[level] / slide_mpp


def grid_origin(xy0: tuple[float, float], size0: float,
                dimensions: tuple[int, int]) -> tuple[int, int]:
    """Level-0 (x, y) top-left of the grid tile of side ``size0`` holding point ``xy0``.

    Only tiles entirely inside a slide of ``dimensions`` (width, height) count; a point off
    them gives the nearest one.
    """
    w, h = dimensions
    nx = max(int(math.floor(w / size0 + 1e-6)), 1)
    ny = max(int(math.floor(h / size0 + 1e-6)), 1)
    gx = min(max(int(math.floor(xy0[0] / size0)), 0), nx - 1)
    gy = min(max(int(math.floor(xy0[1] / size0)), 0), ny - 1)
    return int(round(gx * size0)), int(round(gy * size0))
