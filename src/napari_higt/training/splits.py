"""Cross-validation splits of a labelled dataset."""

from __future__ import annotations

import numpy as np

from napari_higt.errors import UserFacingError

__all__ = ["make_splits", "check_fold_classes"]


def check_fold_classes(y: np.ndarray, parts: list[tuple[str, np.ndarray]],
                       class_names: list[str] | None = None) -> None:
    """Refuse a fold part (training, evaluation, ...) holding fewer than two classes.

    A model fitted on one class learns nothing, and an evaluation fold of one class has no
    AUC: either would be reported as a result. ``parts`` are ``(name, indices)`` pairs; the
    name appears in the message ("fold 2 training part").

    Raises
    ------
    UserFacingError
        Naming the part and the one class it holds.
    """
    y = np.asarray(y, dtype=np.int64)
    for name, idx in parts:
        present = np.unique(y[np.asarray(idx, dtype=np.int64)])
        if len(present) < 2:
            one = int(present[0]) if len(present) else None
            what = ("no slide" if one is None else
                    f"only class {class_names[one]!r}" if class_names else f"only class {one}")
            raise UserFacingError(
                f"the {name} holds {what} ({len(idx)} slide(s)); every training and "
                "evaluation part needs at least two classes. Reassign the labels CSV's fold "
                "column, or drop it for a stratified split")


def make_splits(y: np.ndarray, n_folds: int, seed: int,
                folds: np.ndarray | None = None,
                class_names: list[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, validation indices) per fold: the CSV's folds when given, else a
    stratified k-fold shuffled by ``seed``.

    Raises
    ------
    UserFacingError
        A class has fewer slides than folds, a CSV fold would leave no training slide, or
        a training or evaluation part would hold one class (`check_fold_classes`).
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
            check_fold_classes(y, [(f"training part of CSV fold {f}", tr),
                                   (f"evaluation part (CSV fold {f})", val)], class_names)
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
