"""Benchmark slides made of real tissue (the CMU-1 sample), at any size, cached in /tmp."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "cmu-1-small-region.svs"
CACHE = Path(os.environ.get("NAPARI_HIGT_BENCH_CACHE", Path(tempfile.gettempdir()) / "napari-higt-bench"))


def tissue_block(size: int = 2048) -> np.ndarray:
    """A ``size`` x ``size`` crop of real H&E from the sample slide, mostly tissue."""
    from napari_higt.slide import Slide

    with Slide(SAMPLE) as s:
        return s.read_region((200, 900), 0, (size, size))


def _halve(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return (a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).astype(np.uint16).sum((1, 3)) // 4).astype(
        np.uint8)


def periodic_slide(size: int = 20000, mpp: float = 0.5, tile: int = 256,
                   background: bool = True) -> Path:
    """A ``size`` x ``size`` pyramidal JPEG-tiled TIFF of mirrored real tissue.

    Written tile by tile (memory stays small). With ``background`` the outer quarter of the
    slide is glass, so that tissue detection has work to do.
    """
    import tifffile

    path = CACHE / f"tissue_{size}_{tile}_{int(background)}.tif"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    block = tissue_block()
    period = np.concatenate([block, block[:, ::-1]], axis=1)
    period = np.concatenate([period, period[::-1]], axis=0)  # seamless 4096 period
    glass = np.full((tile, tile, 3), 242, np.uint8)
    tmp = path.with_suffix(".tmp.tif")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        level, k = period, 0
        while size >> k >= 512:
            n = size >> k
            p = level.shape[0]

            def tiles(n=n, p=p, level=level, k=k):
                for y in range(0, n, tile):
                    for x in range(0, n, tile):
                        edge = n // 8
                        if background and not (edge <= y < n - edge and edge <= x < n - edge):
                            yield glass
                            continue
                        ys = (np.arange(y, y + tile) % p)[:, None]
                        xs = (np.arange(x, x + tile) % p)[None, :]
                        yield level[ys, xs]

            px_per_cm = 1e4 / (mpp * 2**k)
            tw.write(tiles(), shape=(n, n, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression="jpeg", compressionargs={"level": 85},
                     resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER",
                     subfiletype=1 if k else 0)
            level, k = _halve(level), k + 1
    os.replace(tmp, path)
    return path
