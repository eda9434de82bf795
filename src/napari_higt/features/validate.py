"""Checks of the arrays a feature file holds, made once where every file is read
(`napari_higt.features.store.FeatureStore.read`).

A file that passes holds, per level, ``coords`` as an ``(N, 2)`` array of finite numbers
and ``features`` as an ``(N, C)`` array of finite numbers. Anything else (a NaN row left by
a failed extractor, coordinates of another shape, text) is refused with a `FeatureError`
that names the file, the level and the first bad row, so no model ever sees it: a NaN
feature would otherwise become a NaN probability, whose argmax is a confident-looking
wrong class.
"""

from __future__ import annotations

import os

import numpy as np

from napari_higt.errors import FeatureError

__all__ = ["checked_level", "first_bad_row"]

_NUMERIC = "biuf"  # numpy dtype kinds accepted: bool, signed / unsigned int, float
_RECOMPUTE = "recompute it (napari-higt preprocess --overwrite)"


def first_bad_row(a: np.ndarray) -> int | None:
    """Index of the first row of 2-D ``a`` holding a NaN or an infinity, or None."""
    ok = np.isfinite(a).all(axis=1)
    return None if ok.all() else int(np.argmin(ok))


def _describe(row: np.ndarray) -> str:
    kinds = [k for k, bad in (("NaN", np.isnan(row).any()), ("inf", np.isinf(row).any())) if bad]
    return " and ".join(kinds)


def checked_level(path: str | os.PathLike, level: str, coords: np.ndarray,
                  features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``coords`` as ``(N, 2)`` int64 and ``features`` as ``(N, C)`` float32, checked.

    Parameters
    ----------
    path : the feature file, for messages
    level : the level's name (``x10``, ...), for messages
    coords, features : the arrays as stored

    Raises
    ------
    FeatureError
        Non-numeric arrays, wrong shapes, lengths that differ, or a NaN / infinite value
        (the message names the first such row).
    """
    where = f"{path}, level {level}"
    c, f = np.asarray(coords), np.asarray(features)
    if c.size == 0 and c.dtype.kind in _NUMERIC:  # an empty level, however it was stored
        c = c.reshape(0, 2)
    if c.dtype.kind not in _NUMERIC or c.ndim != 2 or c.shape[1] != 2:
        raise FeatureError(f"{where}: coords must be an (N, 2) array of numbers, found shape "
                           f"{tuple(c.shape)} of {c.dtype}; {_RECOMPUTE}")
    if f.dtype.kind not in _NUMERIC or f.ndim != 2:
        raise FeatureError(f"{where}: features must be an (N, C) array of numbers, found shape "
                           f"{tuple(f.shape)} of {f.dtype}; {_RECOMPUTE}")
    if len(c) != len(f):
        raise FeatureError(f"{where}: {len(c)} coords but {len(f)} feature rows; {_RECOMPUTE}")
    if c.dtype.kind == "f" and (row := first_bad_row(c)) is not None:
        raise FeatureError(f"{where}: coords row {row} of {len(c)} holds {_describe(c[row])}; "
                           f"{_RECOMPUTE}")
    # cast first: float64 values beyond float32's range become inf here, and are caught
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = f.astype(np.float32, copy=False)
    row = first_bad_row(f32)
    if row is not None:
        raise FeatureError(f"{where}: features row {row} of {len(f)} holds "
                           f"{_describe(f32[row])} (its computation failed on that tile); "
                           f"{_RECOMPUTE}")
    return c.astype(np.int64, copy=False), f32
