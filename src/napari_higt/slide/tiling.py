"""Tiling a slide into x10 patches and x5 regions (and one thumbnail node).

* x10 = 1.0 µm/px, x5 = 2.0 µm/px (`napari_higt.levels`); the slide's scale comes from
  ``Slide.require_mpp()`` (the file's ``openslide.mpp-x``, else its objective power with
  10x = 1.0 µm/px, else the ``mpp`` the user states).
* A tile is ``patch_size`` (512) px at its magnification, i.e. ``patch_size * target_mpp /
  slide_mpp`` level-0 px on a side. Coordinates are level-0 px, (x, y) of the top-left
  corner, int64, on a grid starting at (0, 0); x5 regions lie on the same grid as the x10
  patches, so a region's children are the (up to 4) x10 patches inside it.
* Patches must lie entirely inside the slide and are kept when their tissue fraction (in the
  tissue mask) is strictly above ``tissue_threshold`` (default 0.25).
* Regions are kept when their own tissue fraction is above the threshold and they lie inside
  the slide, or when they hold a kept patch (then a region may reach past the right/bottom
  border; the outside reads as white). So every patch has its region.
* Pixels are read at the pyramid level nearest above the target magnification (the coarsest
  file level whose downsample is <= the target's) and resized with antialiasing (Pillow's
  area-aware bilinear filter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_higt.errors import SlideError
from napari_higt.levels import PATCH, PATCH_SIZE, REGION, TARGET_MPP, THUMBNAIL, TILED_LEVELS
from napari_higt.levels import grid_origin, tile_size0

__all__ = [
    "DEFAULT_TISSUE_THRESHOLD",
    "LevelGrid",
    "Tiling",
    "tile_slide",
    "level_grid",
    "tile_origin_at",
    "read_tile",
    "read_tiles",
    "thumbnail_tile",
]

DEFAULT_TISSUE_THRESHOLD = 0.25


@dataclass(frozen=True)
class LevelGrid:
    """The kept tiles of one magnification."""

    name: str  # a level of napari_higt.levels.TILED_LEVELS
    target_mpp: float  # µm per px of the tiles
    patch_size: int  # px on a side at the target magnification
    size0: float  # level-0 px on a side
    read_level: int  # file level the pixels are read from
    read_size: int  # px on a side read at that level (then resized to patch_size)
    coords: np.ndarray  # (N, 2) int64 level-0 top-left (x, y)
    tissue: np.ndarray  # (N,) float64 tissue fraction

    @property
    def magnification(self) -> float:
        """Nominal objective magnification (10 / mpp)."""
        return 10.0 / self.target_mpp

    def __len__(self) -> int:
        return len(self.coords)


@dataclass
class Tiling:
    """All tiles of one slide."""

    slide_id: str
    dimensions: tuple[int, int]
    mpp: float
    tissue_threshold: float
    levels: dict[str, LevelGrid]
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {THUMBNAIL: 1, **{k: len(v) for k, v in self.levels.items()}}


def _mpp_of(slide, mpp: float | None) -> float:
    if mpp is not None:
        if not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and mpp > 0):
            raise SlideError(
                slide.path, f"--mpp must be a positive number of µm per pixel, got {mpp!r}"
            )
        return float(mpp)
    mx, my = slide.require_mpp()
    return float(mx + my) / 2.0


def level_grid(slide, name: str, coords, tissue=None, *, mpp: float | None = None,
               patch_size: int = PATCH_SIZE) -> LevelGrid:
    """The `LevelGrid` of tiles of level ``name`` at ``coords`` (level-0 top-left (x, y)).

    Its tile size and the file level the pixels are read from are those `tile_slide` uses
    (the coarsest file level whose downsample is <= the target's).

    Parameters
    ----------
    slide : napari_higt.slide.Slide
    name : a level of `napari_higt.levels.TILED_LEVELS`
    coords : (N, 2) level-0 px
    tissue : (N,) tissue fractions (default: ones)
    mpp : level-0 µm per pixel; overrides the slide's own
    patch_size : tile side in px at the level's scale
    """
    size0 = tile_size0(name, _mpp_of(slide, mpp), patch_size)
    ds = size0 / patch_size  # level-0 px per target px
    level = slide.best_level_for_downsample(ds)
    read_size = max(1, int(round(size0 / slide.level_downsamples[level])))
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    tissue = np.ones(len(coords)) if tissue is None else np.asarray(tissue, np.float64)
    return LevelGrid(name=name, target_mpp=TARGET_MPP[name], patch_size=patch_size,
                     size0=float(size0), read_level=level, read_size=read_size,
                     coords=coords, tissue=tissue)


def tile_origin_at(slide, xy0: tuple[float, float], level: str = PATCH, *,
                   mpp: float | None = None, patch_size: int = PATCH_SIZE) -> tuple[int, int]:
    """Level-0 (x, y) top-left of the ``level`` grid tile holding level-0 point ``xy0``.

    The grid is `tile_slide`'s; a point off the slide gives the nearest tile inside it.
    """
    size0 = tile_size0(level, _mpp_of(slide, mpp), patch_size)
    return grid_origin(xy0, size0, slide.dimensions)


def tile_slide(
    slide,
    mask=None,
    *,
    mpp: float | None = None,
    patch_size: int = PATCH_SIZE,
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD,
    levels: Sequence[str] = TILED_LEVELS,
) -> Tiling:
    """Tile ``slide`` at x5 and x10 and keep the tiles with tissue.

    Parameters
    ----------
    slide : napari_higt.slide.Slide
    mask : TissueMask, optional
        Defaults to ``tissue_mask(slide)``.
    mpp : float, optional
        Level-0 µm per pixel; overrides the slide's own (needed when the file has none).
    patch_size : int
        Tile side in px at the target magnification.
    tissue_threshold : float
        A tile is kept when its tissue fraction is strictly above this (0..1).

    Raises
    ------
    SlideError
        Unknown scale (no mpp, no objective power, none stated).
    """
    if not 0.0 <= tissue_threshold < 1.0:
        raise ValueError(f"tissue_threshold must be in [0, 1), got {tissue_threshold}")
    slide_mpp = _mpp_of(slide, mpp)
    if mask is None:
        from napari_higt.slide.tissue import tissue_mask

        mask = tissue_mask(slide)
    width, height = slide.dimensions
    warnings: list[str] = []
    out: dict[str, LevelGrid] = {}

    s10 = tile_size0(PATCH, slide_mpp, patch_size)
    s5 = tile_size0(REGION, slide_mpp, patch_size)
    if s10 < patch_size * 0.99:
        warnings.append(
            f"the slide ({slide_mpp:.3g} µm/px) is coarser than x10 (1.0 µm/px): patches are "
            "upsampled"
        )
    eps = 1e-6
    # x10 patches: full tiles inside the slide
    nx10 = int(math.floor(width / s10 + eps))
    ny10 = int(math.floor(height / s10 + eps))
    gx, gy = np.meshgrid(np.arange(nx10), np.arange(ny10), indexing="xy")
    g10 = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)
    c10 = np.rint(g10 * s10).astype(np.int64)
    t10 = mask.region_fraction(c10, s10) if len(c10) else np.zeros(0)
    keep10 = t10 > tissue_threshold
    g10, c10, t10 = g10[keep10], c10[keep10], t10[keep10]

    # x5 regions on the same grid: inside the slide with tissue, or parent of a kept patch
    nx5 = max(int(math.ceil(nx10 / 2)), int(math.floor(width / s5 + eps)))
    ny5 = max(int(math.ceil(ny10 / 2)), int(math.floor(height / s5 + eps)))
    gx, gy = np.meshgrid(np.arange(nx5), np.arange(ny5), indexing="xy")
    g5 = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)
    c5 = np.rint(g5 * s5).astype(np.int64)
    t5 = mask.region_fraction(c5, s5) if len(c5) else np.zeros(0)
    inside = (c5[:, 0] + s5 <= width + 0.5) & (c5[:, 1] + s5 <= height + 0.5)
    has_child = np.zeros(len(g5), bool)
    if len(g10):
        parent = (g10 // 2)
        has_child[parent[:, 1] * nx5 + parent[:, 0]] = True
    keep5 = ((t5 > tissue_threshold) & inside) | has_child
    c5, t5 = c5[keep5], t5[keep5]

    for name, coords, tissue in ((REGION, c5, t5), (PATCH, c10, t10)):
        if name in levels:
            out[name] = level_grid(slide, name, coords, tissue, mpp=slide_mpp,
                                   patch_size=patch_size)
    return Tiling(
        slide_id=slide.slide_id, dimensions=(int(width), int(height)), mpp=slide_mpp,
        tissue_threshold=float(tissue_threshold), levels=out, warnings=warnings,
    )


def _resize(pix: np.ndarray, size: int) -> np.ndarray:
    if pix.shape[0] == size and pix.shape[1] == size:
        return pix
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(pix))
    return np.asarray(img.resize((size, size), Image.BILINEAR))


def read_tile(slide, grid: LevelGrid, xy: Sequence[int]) -> np.ndarray:
    """One tile of ``grid`` at (x, y) level-0 px: (patch_size, patch_size, 3) uint8."""
    pix = slide.read_region(
        (int(xy[0]), int(xy[1])), grid.read_level, (grid.read_size, grid.read_size)
    )
    return _resize(pix, grid.patch_size)


def read_tiles(slide, grid: LevelGrid, indices: Sequence[int] | np.ndarray | None = None,
               executor=None) -> np.ndarray:
    """Tiles ``indices`` of ``grid`` as a (B, patch_size, patch_size, 3) uint8 batch.

    ``executor`` (a ``concurrent.futures`` executor) reads tiles in parallel; OpenSlide
    releases the GIL while decoding.
    """
    idx = np.arange(len(grid)) if indices is None else np.asarray(indices, dtype=np.int64)
    out = np.empty((len(idx), grid.patch_size, grid.patch_size, 3), np.uint8)

    def one(k: int) -> None:
        out[k] = read_tile(slide, grid, grid.coords[idx[k]])

    if executor is None:
        for k in range(len(idx)):
            one(k)
    else:
        list(executor.map(one, range(len(idx))))
    return out


def thumbnail_tile(slide, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """The whole slide as one (patch_size, patch_size, 3) tile: long side fitted, padded white."""
    thumb = slide.thumbnail(patch_size)
    h, w = thumb.shape[:2]
    out = np.full((patch_size, patch_size, 3), 255, np.uint8)
    y0, x0 = (patch_size - h) // 2, (patch_size - w) // 2
    out[y0:y0 + h, x0:x0 + w] = thumb[:patch_size, :patch_size]
    return out
