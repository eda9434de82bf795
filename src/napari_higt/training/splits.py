"""Cross-validation splits of a labelled dataset."""

from __future__ import annotations

import numpy as np

from napari_higt.errors import UserFacingError

__all__ = ["make_splits"]


def make_splits(y: np.ndarray, n_folds: int, seed: int,
                folds: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, validation indices) per fold: the CSV's folds when given, else a
    stratified k-fold shuffled by ``seed``.

    Raises
    ------
    UserFacingError
        A class has fewer slides than folds, or a CSV fold would leave no training slide.
    """
    y = np.asarray(y, dtype=np.int64)
    idx = np.arange(len(y))
    if folds is not None:
        out = []
        for f in sorted(set(int(v) for v in folds)):
            val = idx[folds == f]
            tr = idx[folds != f]
            if len(tr) == 0:
                raise UserFacingError(f"fold {f} of the labels CSV holds every slide: no "
                                      "training data is left; use at least two folds")
            out.append((tr, val))
        if len(out) < 2:
            raise UserFacingError("the labels CSV's fold column has one value only; give at "
                                  "least two folds (or drop the column for a stratified split)")
        return out
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    counts = counts[counts > 0]
    if counts.min() < n_folds:
        raise UserFacingError(
            f"{n_folds}-fold stratified CV needs at least {n_folds} slides per class; the "
            f"smallest class has {counts.min()}. Use fewer folds (--folds) or label more slides")
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in skf.split(idx, y)]
