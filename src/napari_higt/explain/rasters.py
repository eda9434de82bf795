"""Node scores -> rasters aligned with the slide.

A node is a square tile given by its level-0 top-left corner and its side in level-0 pixels.
A raster of a score paints every tile with its node's value on a grid of ``downsample``
level-0 pixels per raster pixel; pixels no node covers are NaN (shown transparent), and
pixels covered by several nodes hold their mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ScoreRaster", "node_raster"]


@dataclass(frozen=True)
class ScoreRaster:
    """A score painted on a regular grid over the slide.

    Attributes
    ----------
    values : (h, w) float32 array
        NaN where no node lies.
    downsample : float
        Level-0 pixels per raster pixel.
    """

    values: np.ndarray
    downsample: float

    @property
    def finite_range(self) -> tuple[float, float]:
        """(min, max) of the painted values; (0, 1) when nothing is painted."""
        v = self.values[np.isfinite(self.values)]
        if v.size == 0:
            return (0.0, 1.0)
        lo, hi = float(v.min()), float(v.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def node_raster(
    coords: np.ndarray,
    tile_size: float,
    values: np.ndarray,
    slide_dimensions: tuple[int, int],
    pixels_per_tile: int = 4,
) -> ScoreRaster:
    """Paint per-node ``values`` into a raster of the whole slide.

    Parameters
    ----------
    coords : (N, 2) int array
        Top-left (x, y) of each node's tile in level-0 pixels.
    tile_size : float
        Side of the tiles in level-0 pixels.
    values : (N,) array
        One score per node.
    slide_dimensions : (width, height)
        Level-0 size of the slide.
    pixels_per_tile : int
        Raster pixels along one tile side; sets the raster's resolution.

    Returns
    -------
    ScoreRaster
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(coords):
        raise ValueError(f"{len(values)} values for {len(coords)} nodes")
    if tile_size <= 0 or pixels_per_tile < 1:
        raise ValueError("tile_size and pixels_per_tile must be positive")
    downsample = float(tile_size) / pixels_per_tile
    w = int(np.ceil(slide_dimensions[0] / downsample))
    h = int(np.ceil(slide_dimensions[1] / downsample))
    total = np.zeros(h * w, np.float64)
    count = np.zeros(h * w, np.float64)
    keep = np.isfinite(values)
    if keep.any():
        x0 = np.round(coords[keep, 0] / downsample).astype(np.int64)
        y0 = np.round(coords[keep, 1] / downsample).astype(np.int64)
        offs = np.arange(pixels_per_tile)
        ys = (y0[:, None, None] + offs[None, :, None]).repeat(pixels_per_tile, axis=2)
        xs = (x0[:, None, None] + offs[None, None, :]).repeat(pixels_per_tile, axis=1)
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        flat = (ys * w + xs)[inside]
        vals = np.broadcast_to(values[keep][:, None, None], ys.shape)[inside]
        total += np.bincount(flat, weights=vals, minlength=h * w)
        count += np.bincount(flat, minlength=h * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        raster = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return ScoreRaster(values=raster.reshape(h, w).astype(np.float32), downsample=downsample)
