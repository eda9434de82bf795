"""Cross-validation folds that keep a group (a patient) together, and the folds file of a run.

Every fold is three disjoint index sets into the slide list:

* ``test``: the outer fold, scored once for the reported metrics;
* ``val``: an inner validation split taken from the rest, which selects the epoch and stops
  training early; empty for the ``"eval-fold"`` protocol, which selects on ``test``
  (optimistic, kept as an explicit option);
* ``train``: what the model is fitted on.

All three are grouped (no group has slides in two of them) and stratified by label as far as
the groups allow (scikit-learn's ``StratifiedGroupKFold``). Without a group column every slide
is its own group. ``write_folds`` / ``read_folds`` store them by slide id in ``folds.json``,
so a later run (``--folds-from``) scores exactly the same partitions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import UserFacingError
from napari_higt.training.splits import check_fold_classes

__all__ = ["Fold", "PROTOCOLS", "FOLDS_FILE", "grouped_kfold", "inner_split", "make_folds",
           "cv_folds", "check_grouped", "write_folds", "read_folds"]

#: ``"inner-val"``: epoch chosen on a grouped validation split of the training part (default);
#: ``"eval-fold"``: epoch chosen on the evaluation fold itself (optimistic).
PROTOCOLS = ("inner-val", "eval-fold")
FOLDS_FILE = "folds.json"
_FORMAT = "napari-higt folds"


@dataclass
class Fold:
    """Index sets of one outer fold (see the module docstring)."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def select(self) -> np.ndarray:
        """The slides that choose the epoch: ``val``, or ``test`` when there is none."""
        return self.val if len(self.val) else self.test


def _as_groups(groups: Sequence[Any] | None, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray([str(v) for v in groups])
    if len(g) != n:
        raise ValueError(f"{len(g)} group values for {n} slides")
    return g


def grouped_kfold(y: np.ndarray, groups: Sequence[Any] | None, n_folds: int,
                  seed: int) -> list[np.ndarray]:
    """Test indices of ``n_folds`` stratified, grouped folds shuffled by ``seed``.

    Without groups (every slide its own group) this is scikit-learn's ``StratifiedKFold``,
    the folds of `training.splits.make_splits`.

    Raises
    ------
    UserFacingError
        Fewer groups than folds, or a class present in fewer groups than there are folds
        (some fold would have no slide of it, and its AUC would be undefined).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y, dtype=np.int64)
    g = _as_groups(groups, len(y))
    what = "groups" if groups is not None else "slides"
    for c in np.unique(y):
        n_c = len(np.unique(g[y == c]))
        if n_c < n_folds:
            raise UserFacingError(
                f"{n_folds}-fold grouped CV needs every class in at least {n_folds} {what}; "
                f"class {int(c)} has {n_c}. Use fewer folds (--folds) or label more slides")
    if groups is None:
        from sklearn.model_selection import StratifiedKFold

        skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return [te for _, te in skf.split(np.zeros(len(y)), y)]
    skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [te for _, te in skf.split(np.zeros(len(y)), y, g)]


def inner_split(y: np.ndarray, groups: Sequence[Any] | None, idx: np.ndarray,
                val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (fit, validation) by group, about ``val_fraction`` validation.

    Stratified where the groups allow; both parts hold at least one group.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.asarray(idx, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    g = _as_groups(groups, len(y))[idx]
    n_groups = len(np.unique(g))
    if not 0 < val_fraction < 1 or n_groups < 2:
        raise UserFacingError(
            f"an inner validation split needs a fraction in (0, 1) and two groups; got "
            f"{val_fraction} and {n_groups} group(s) in the training part")
    k = int(min(max(2, round(1 / val_fraction)), n_groups))
    # StratifiedGroupKFold warns when a class has fewer groups than k (the split is still
    # grouped, only less balanced, which a small cohort has to accept) and refuses a k above
    # every class's group count: then a plain random split of the groups.
    import warnings

    from sklearn.model_selection import GroupShuffleSplit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fit, val = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed)
                            .split(np.zeros(len(idx)), y[idx], g))
    except ValueError:
        fit, val = next(GroupShuffleSplit(1, test_size=val_fraction, random_state=seed)
                        .split(np.zeros(len(idx)), y[idx], g))
    return idx[np.sort(fit)], idx[np.sort(val)]


def make_folds(y: np.ndarray, groups: Sequence[Any] | None, n_folds: int, seed: int,
               protocol: str = "inner-val", val_fraction: float = 0.2,
               test_folds: Sequence[np.ndarray] | None = None) -> list[Fold]:
    """Outer folds plus, for ``"inner-val"``, each fold's inner validation split.

    ``test_folds`` (e.g. from a ``fold`` column of the labels CSV) replaces the outer split.
    """
    if protocol not in PROTOCOLS:
        raise UserFacingError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    y = np.asarray(y, dtype=np.int64)
    tests = list(test_folds) if test_folds is not None else grouped_kfold(y, groups, n_folds, seed)
    folds, everyone = [], np.arange(len(y))
    for k, te in enumerate(tests):
        te = np.sort(np.asarray(te, dtype=np.int64))
        rest = np.setdiff1d(everyone, te)
        check_fold_classes(y, [(f"fold {k} training part", rest),
                               (f"fold {k} test part", te)])
        if protocol == "inner-val":
            tr, va = inner_split(y, groups, rest, val_fraction, seed * 1000 + k)
        else:
            tr, va = rest, np.zeros(0, dtype=np.int64)
        folds.append(Fold(k, tr, va, te))
    check_grouped(folds, groups, len(y))
    return folds


def cv_folds(y: np.ndarray, groups: Sequence[Any] | None, csv_folds: np.ndarray | None,
             n_folds: int, seeds: Sequence[int], protocol: str, val_fraction: float,
             given: dict[int, list[Fold]] | None = None) -> dict[int, list[Fold]]:
    """The folds of a cross-validation run, per seed.

    ``given`` (``read_folds``) wins; else the outer folds are the labels CSV's ``fold``
    column (the same for every seed) or grouped stratified folds shuffled by the seed.

    Raises
    ------
    UserFacingError
        ``given`` lacks a requested seed, or a CSV fold column with fewer than two folds.
    """
    if given is not None:
        lacking = [sd for sd in seeds if sd not in given]
        if lacking:
            raise UserFacingError(f"the folds file holds seeds {sorted(given)}, not "
                                  f"{lacking}; ask for those seeds (--seeds)")
        return {sd: given[sd] for sd in seeds}
    tests = None
    if csv_folds is not None:
        values = sorted(set(int(v) for v in csv_folds))
        if len(values) < 2:
            raise UserFacingError("the labels CSV's fold column has one value only; give at "
                                  "least two folds (or drop the column for a stratified split)")
        tests = [np.flatnonzero(np.asarray(csv_folds) == v) for v in values]
    return {sd: make_folds(y, groups, n_folds, sd, protocol, val_fraction, tests)
            for sd in seeds}


def check_grouped(folds: Sequence[Fold], groups: Sequence[Any] | None, n: int) -> None:
    """Raise if a fold's parts overlap or a group has slides in two of them.

    Raises
    ------
    UserFacingError
        Naming the first group found split and the fold.
    """
    g = _as_groups(groups, n)
    for f in folds:
        parts = {"train": f.train, "validation": f.val, "test": f.test}
        owner: dict[str, str] = {}
        for name, idx in parts.items():
            for grp in np.unique(g[np.asarray(idx, dtype=np.int64)]):
                if owner.setdefault(grp, name) != name:
                    raise UserFacingError(
                        f"fold {f.index}: group {str(grp)!r} has slides in both the "
                        f"{owner[grp]} and the {name} part; folds must keep a group together")


def write_folds(path: str | os.PathLike, slide_ids: Sequence[str],
                folds_by_seed: dict[int, list[Fold]], **meta: Any) -> Path:
    """Write ``folds.json`` (slide ids per part, per seed and fold) atomically."""
    from napari_higt.io import atomic_write_text

    ids = list(slide_ids)
    doc = {"format": _FORMAT, "version": 1, **meta, "seeds": {
        str(sd): [{"fold": f.index, **{part: [ids[i] for i in getattr(f, part)]
                                       for part in ("train", "val", "test")}}
                  for f in folds]
        for sd, folds in folds_by_seed.items()}}
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=1), "the folds file")
    return path


def read_folds(path: str | os.PathLike, slide_ids: Sequence[str],
               groups: Sequence[Any] | None = None) -> tuple[dict[int, list[Fold]], dict]:
    """Folds of a ``folds.json`` (or of the run folder holding one) mapped onto ``slide_ids``.

    Returns the folds per seed and the file's other keys (protocol, group column, ...).

    Raises
    ------
    UserFacingError
        Unreadable file, slides of the file missing here or slides here missing from every
        fold of the file, or a group split across parts (``groups`` given).
    """
    p = Path(path)
    if p.is_dir():
        p = p / FOLDS_FILE
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserFacingError(f"cannot read the folds file {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise UserFacingError(f"{p} is not a napari-higt folds file (written by `train`)")
    pos = {s: i for i, s in enumerate(slide_ids)}
    out: dict[int, list[Fold]] = {}
    for sd, rows in doc["seeds"].items():
        folds = []
        for r in rows:
            named = [s for part in ("train", "val", "test") for s in r[part]]
            unknown = [s for s in named if s not in pos]
            if unknown:
                raise UserFacingError(
                    f"{p} lists {len(unknown)} slide(s) this dataset does not have (e.g. "
                    f"{unknown[0]!r}); use the folds of a run on the same slides")
            left = len(pos) - len(set(named))
            if left:
                raise UserFacingError(
                    f"{p}, fold {int(r['fold'])}: {left} slide(s) of this dataset are in "
                    "none of its parts; use the folds of a run on the same slides")
            idx = {part: np.asarray([pos[s] for s in r[part]], dtype=np.int64)
                   for part in ("train", "val", "test")}
            folds.append(Fold(int(r["fold"]), idx["train"], idx["val"], idx["test"]))
        check_grouped(folds, groups, len(pos))
        out[int(sd)] = folds
    meta = {k: v for k, v in doc.items() if k not in ("format", "version", "seeds")}
    return out, meta
