"""The scaling every shown score goes through (``explain.registry`` names it per score).

Raw scores are on scales nobody can read (an attention of 5.7, a fitness of -0.996, a
gradient of 1e-3), and they differ between slides. Shown values are therefore ranks within
the slide and level: ``percentile`` maps the lowest value of a level to 0 and the highest to
100 (ties share their mean rank); ``signed_percentile`` ranks the *size* of a signed
contribution (from 100/n for the smallest to 100 for the largest) and keeps its sign, so
-100..100 with 0 meaning no effect. A value
that does not exist for a node (another level, a model without that score) stays NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from napari_higt.explain.registry import score_spec
from napari_higt.levels import LEVEL_IDS

__all__ = ["percentile", "signed_percentile", "normalise", "node_values"]


def percentile(values: np.ndarray) -> np.ndarray:
    """Rank of each finite value among the finite ones, scaled to 0-100 (NaN stays NaN).

    Ties share their mean rank, so a level whose values are all equal (or that has one
    node) is 50 throughout: nothing stands out.
    """
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v)
    n = int(ok.sum())
    if n == 0:
        return out
    r = rankdata(v[ok], method="average")
    out[ok] = 50.0 if n == 1 else 100.0 * (r - 1) / (n - 1)
    return out


def signed_percentile(values: np.ndarray) -> np.ndarray:
    """``sign(v) * 100 * rank(|v|) / n`` over the n non-zero finite values; 0 stays 0.

    The ranks run from 1, so the smallest effect is ``±100 / n``, never 0: only a value
    that is exactly 0 reads "no effect".
    """
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    out = np.where(np.isfinite(v), 0.0, np.nan)
    nz = np.isfinite(v) & (v != 0)
    if nz.any():
        out[nz] = np.sign(v[nz]) * 100.0 * rankdata(np.abs(v[nz])) / int(nz.sum())
    return out


def normalise(values: np.ndarray, normalisation: str) -> np.ndarray:
    """``values`` (one slide, one level) scaled by the registry normalisation named."""
    if normalisation == "percentile":
        return percentile(values)
    if normalisation == "signed_percentile":
        return signed_percentile(values)
    raise ValueError(f"unknown normalisation {normalisation!r}")


def node_values(level: np.ndarray, scores: Mapping[str, np.ndarray],
                raw: bool = False) -> dict[str, np.ndarray]:
    """Every (N,) per-node score as shown: NaN off the score's levels, and scaled within
    each of its levels unless ``raw``.

    Parameters
    ----------
    level : (N,) level ids of the slide's nodes (``graph.level``)
    scores : name -> (N,) raw values (other shapes, e.g. per-edge scores, are left out)
    raw : keep the raw values (still NaN where the score does not exist)
    """
    level = np.asarray(level)
    out: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape != level.shape:
            continue
        spec = score_spec(name)
        shown = np.full(v.shape, np.nan)
        for lv in spec.levels:
            m = level == LEVEL_IDS[lv]
            shown[m] = v[m] if raw else normalise(v[m], spec.normalisation)
        out[name] = shown
    return out
