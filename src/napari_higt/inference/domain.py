"""Is a slide like the slides the model was trained on? The out-of-domain warnings.

Two reasons to distrust a prediction before looking at it:

* **the scale is assumed**: the feature file records that the slide's µm per pixel was not
  read from the file (stated by the user or the demo, or inferred from the objective
  power), so the tiles may not show tissue at the scale the model learnt;
* **the features lie outside the training range**: every classifier standardises its input
  with the per-feature mean and sd of its training fold (``models/norm.py``, saved in the
  checkpoint). The *feature distance* of a slide is how far its average moves from the
  training average on its most shifted feature, in training sds: ``max over features of
  |mean over the slide's x5 and x10 nodes of z|``, ``z = (x - mean) / sd``. Training slides
  of the bundled demo model lie at 0.09-0.26 (its validation slides up to 0.29), the TCGA
  section at 3.2, the CMU-1 sample at 1.8. (The mean of ``|z|`` over nodes and features, the
  other obvious choice, moves from 0.8 to only 1.2-1.3 on the TCGA section: a shift of a
  few features drowns in the others.) The threshold is calibrated on the training folds
  (`calibrate`): ``MARGIN`` times the largest distance of a training slide, stored in the
  model card (``domain``). A slide above it gets a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["STATISTIC", "MARGIN", "MPP_SOURCES", "standardiser", "feature_distance",
           "calibrate", "domain_warnings"]

STATISTIC = ("largest per-feature shift of the slide's mean feature, in training sds "
             "(training-fold standardisation)")
#: The threshold is this many times the farthest training slide: slides held out from the
#: same distribution come close to the training maximum (1.1 x for the demo model's
#: validation slides), another tissue lands far above it (12 x for the TCGA section).
MARGIN = 2.0
#: How a feature file says its scale was known (``mpp_source`` attribute of the file).
MPP_SOURCES = {"file": "read from the file", "magnification": "inferred from the objective "
               "power", "stated": "stated, not read from the file"}


def standardiser(state_dict: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, sd) of the model's input standardisation in ``state_dict``, or None."""
    mean, std = state_dict.get("standardize.mean"), state_dict.get("standardize.std")
    if mean is None or std is None:
        return None
    to_np = (lambda t: t.detach().cpu().double().numpy()) if hasattr(mean, "detach") \
        else (lambda t: np.asarray(t, dtype=np.float64))
    return to_np(mean), to_np(std)


def feature_distance(x: np.ndarray, level: np.ndarray, mean: np.ndarray,
                     std: np.ndarray) -> float:
    """``max_f |mean_nodes z_f|`` over a slide's x5 and x10 nodes (see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    tiles = np.asarray(level) > 0
    if not tiles.any():
        return float("nan")
    z = (x[tiles] - mean) / np.maximum(std, 1e-6)
    return float(np.abs(z.mean(0)).max())


def calibrate(train: Sequence[float], held_out: Sequence[float] = ()) -> dict[str, Any]:
    """The card's ``domain`` entry from the feature distances of the training slides.

    ``held_out``: distances of slides of the same cohort the standardisation was not fitted
    on (e.g. the fold's validation slides); recorded, with how many of them the threshold
    would flag, as evidence that it does not fire on in-domain slides.
    """
    t = np.asarray([v for v in train if np.isfinite(v)], dtype=np.float64)
    if not len(t):
        raise ValueError("no finite training distance to calibrate on")
    threshold = MARGIN * float(t.max())
    out: dict[str, Any] = {
        "statistic": STATISTIC, "rule": f"{MARGIN:g} x the largest training distance",
        "threshold": threshold,
        "train": {"n": int(len(t)), "min": float(t.min()), "median": float(np.median(t)),
                  "max": float(t.max())}}
    h = np.asarray([v for v in held_out if np.isfinite(v)], dtype=np.float64)
    if len(h):
        out["held_out"] = {"n": int(len(h)), "max": float(h.max()),
                           "flagged": int((h > threshold).sum())}
    return out


def domain_warnings(domain: Mapping[str, Any] | None, x: np.ndarray, level: np.ndarray,
                    state_dict: Mapping[str, Any], file_attrs: Mapping[str, Any] | None
                    ) -> tuple[list[str], float | None]:
    """(warnings, feature distance) of one slide for a model.

    Parameters
    ----------
    domain : the model card's ``domain`` entry (None: the feature check is skipped)
    x, level : the slide graph's node features and level ids
    state_dict : the checkpoint's weights (for the standardisation)
    file_attrs : the feature file's attributes (``mpp``, ``mpp_source``)
    """
    warnings: list[str] = []
    attrs = file_attrs or {}
    source = attrs.get("mpp_source")
    if source in ("stated", "magnification"):
        mpp = attrs.get("mpp")
        at = f" ({float(mpp):.3g} µm/px)" if isinstance(mpp, (int, float)) else ""
        warnings.append(f"out of domain? the slide's scale{at} was {MPP_SOURCES[source]}; "
                        "if it is wrong, the tiles show tissue at another magnification "
                        "than the model was trained on")
    stats = standardiser(state_dict)
    if stats is None:
        return warnings, None
    d = feature_distance(x, level, *stats)
    limit = (domain or {}).get("threshold")
    if isinstance(limit, (int, float)) and np.isfinite(d) and d > limit:
        warnings.append(f"out of domain: the slide's features are far from the training "
                        f"range (feature distance {d:.2f} > {limit:.2f}, the model card's "
                        "threshold); the prediction may be meaningless for this slide")
    return warnings, d
