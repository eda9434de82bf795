"""Square patches centred on point annotations (nucleus centres, cell detections).

``crop_at_points(image, xy, size)`` cuts one ``size`` x ``size`` patch per point so that the
point lands on pixel ``(size // 2, size // 2)`` of its patch (row, column); patches that
reach over the image border are padded by reflection (no black frame for a feature
extractor to see), or skipped with ``edge="skip"``. Point files often count pixels from 1
(MATLAB; CRCHistoPhenotypes' ``nuclei.csv``): pass ``one_based=True``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crop_at_points"]


def crop_at_points(image: np.ndarray, xy: np.ndarray, size: int, one_based: bool = False,
                   edge: str = "reflect") -> tuple[np.ndarray, np.ndarray]:
    """Patches of ``image`` centred on the points ``xy``.

    Parameters
    ----------
    image : (H, W, C) array
    xy : (N, 2) point coordinates (x = column, y = row), float or int; rounded to pixels
    size : patch side in pixels
    one_based : the coordinates count pixels from 1
    edge : ``"reflect"`` pads patches that cross the border, ``"skip"`` leaves them out

    Returns
    -------
    (patches, kept)
        ``(M, size, size, C)`` patches of ``image``'s dtype and the indices into ``xy`` of
        the points they belong to (with ``"reflect"``: every point inside the image).
    """
    image = np.asarray(image)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2) - (1.0 if one_based else 0.0)
    pts = np.rint(pts).astype(np.int64)
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if edge not in ("reflect", "skip"):
        raise ValueError(f"edge must be 'reflect' or 'skip', got {edge!r}")
    h, w = image.shape[:2]
    half = size // 2
    x0, y0 = pts[:, 0] - half, pts[:, 1] - half
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    if edge == "skip":
        inside &= (x0 >= 0) & (y0 >= 0) & (x0 + size <= w) & (y0 + size <= h)
    kept = np.flatnonzero(inside)
    pad = [(size, size), (size, size)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="reflect") if edge == "reflect" else image
    off = size if edge == "reflect" else 0
    out = np.empty((len(kept), size, size) + image.shape[2:], image.dtype)
    for j, i in enumerate(kept):
        ys, xs = y0[i] + off, x0[i] + off
        out[j] = padded[ys:ys + size, xs:xs + size]
    return out, kept
