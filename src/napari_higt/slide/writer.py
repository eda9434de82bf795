"""Writing pyramidal tiled TIFFs that OpenSlide reads, with their µm scale.

Used to turn a plain image (or a mosaic of real tissue) into a slide the whole pipeline
can open, and by the tests and benchmarks to make slides of a known layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_higt.io import atomic_path

__all__ = ["write_pyramidal_tiff", "tile_to_size"]


def _halve(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    blocks = rgb[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).astype(np.uint16)
    return (blocks.sum(axis=(1, 3)) // 4).astype(np.uint8)


def write_pyramidal_tiff(
    path: str | os.PathLike,
    rgb: np.ndarray,
    mpp: float | None = 0.5,
    tile: int = 256,
    min_size: int = 512,
    compression: str = "jpeg",
    quality: int = 90,
) -> Path:
    """Write ``rgb`` as a tiled pyramidal TIFF (levels halving down to ``min_size``).

    Parameters
    ----------
    path : path
        Output file (``.tif``); written atomically.
    rgb : (H, W, 3) uint8 array
        Level-0 pixels.
    mpp : float or None
        µm per pixel stored as TIFF resolution (OpenSlide reports it as
        ``openslide.mpp-x``); None writes no scale, like many real files.
    tile : int
        Tile side in pixels (multiple of 16).
    min_size : int
        Stop adding levels once the long side is below this.
    compression : str
        ``"jpeg"`` (needs imagecodecs), ``"zlib"`` or ``"none"``.

    Returns
    -------
    Path
    """
    import tifffile

    rgb = np.ascontiguousarray(np.asarray(rgb)[..., :3], dtype=np.uint8)
    if rgb.ndim != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {rgb.shape}")
    levels = [rgb]
    while max(levels[-1].shape[:2]) // 2 >= min_size:
        levels.append(_halve(levels[-1]))
    comp = None if compression == "none" else compression
    kwargs: dict = {"compression": comp, "tile": (tile, tile), "photometric": "rgb"}
    if comp == "jpeg":
        kwargs["compressionargs"] = {"level": quality}
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=rgb.nbytes > 2**31) as tw:
            for i, level in enumerate(levels):
                extra = {}
                if mpp is not None:
                    px_per_cm = 1e4 / (mpp * 2**i)
                    extra = {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}
                tw.write(level, subfiletype=1 if i else 0, **kwargs, **extra)
    return Path(path)


def tile_to_size(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill ``shape`` (H, W) with mirrored copies of ``rgb`` (real tissue, no seams)."""
    rgb = np.asarray(rgb)[..., :3]
    ry = -(-shape[0] // rgb.shape[0])
    rx = -(-shape[1] // rgb.shape[1])
    row = np.concatenate([rgb if k % 2 == 0 else rgb[:, ::-1] for k in range(rx)], axis=1)
    out = np.concatenate([row if k % 2 == 0 else row[::-1] for k in range(ry)], axis=0)
    return np.ascontiguousarray(out[: shape[0], : shape[1]])

