"""What every labelled-slide dataset shares, whatever a slide is made of (a slide graph,
`training.dataset.SlideGraphDataset`; a bag of instance features,
`training.bag_dataset.BagDataset`): the class bookkeeping, the refusal of a class without
slides, the labels -> class indices of the in-memory constructors and the one warning about
slides and files that could not be paired.

A dataset using :class:`LabelledSlides` has the attributes ``slide_ids`` (list of str), ``y``
(class index per slide, ``int64``) and ``class_names`` (class ``i`` is ``class_names[i]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_higt.errors import FeatureError, short_list, warn_user
from napari_higt.labels import class_order

__all__ = ["LabelledSlides", "class_indices", "warn_unpaired"]


def class_indices(labels: Sequence[int] | Sequence[str],
                  class_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """``(y, class_names)`` of labels given as class indices or as class names.

    Without ``class_names``: names are sorted the way the labels CSV sorts them
    (`napari_higt.labels.class_order`); indices name their classes ``"0" .. "max"``.
    """
    labels = list(labels)
    named = bool(labels) and isinstance(labels[0], str)
    if class_names is None:
        class_names = (class_order(labels) if named
                       else [str(i) for i in range(int(max(labels)) + 1)] if labels else [])
    class_names = [str(c) for c in class_names]
    if named:
        return np.array([class_names.index(v) for v in labels], dtype=np.int64), class_names
    return np.asarray(labels, dtype=np.int64).reshape(-1), class_names


def warn_unpaired(missing: Sequence[str], unlabelled: Sequence[str],
                  extra: Sequence[str] = ()) -> None:
    """One warning for labelled slides without a feature file and files without a label
    (``extra``: more notes, first); nothing when every slide was paired."""
    notes = list(extra)
    if missing:
        notes.append(f"{len(missing)} labelled slide(s) have no feature file and are "
                     f"skipped: {short_list(list(missing))}")
    if unlabelled:
        notes.append(f"{len(unlabelled)} feature file(s) have no label and are skipped: "
                     f"{short_list(list(unlabelled))}")
    if notes:
        warn_user("; ".join(notes))


class LabelledSlides:
    """Mixin of the labelled datasets: length, classes, class counts, the class check."""

    slide_ids: list[str]
    y: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.slide_ids)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, idx: Sequence[int] | None = None) -> np.ndarray:
        """Slides per class (of the slides ``idx``, default all)."""
        y = self.y if idx is None else self.y[np.asarray(idx, dtype=np.int64)]
        return np.bincount(y, minlength=self.n_classes)

    def class_summary(self) -> str:
        """``"name: count, ..."`` of every class."""
        return ", ".join(f"{c}: {n}" for c, n in zip(self.class_names, self.class_counts()))

    def check_classes(self, which: str = "") -> None:
        """Refuse a dataset in which a class has no slide (so at most one class is learned).

        Raises
        ------
        FeatureError
            Naming the classes left without slides, e.g. after slides without feature files
            were skipped.
        """
        counts = self.class_counts()
        empty = [c for c, n in zip(self.class_names, counts) if n == 0]
        if empty:
            have = ", ".join(f"{c} ({n})" for c, n in zip(self.class_names, counts) if n)
            raise FeatureError(
                f"no slide {which} has class {', '.join(map(repr, empty))}: only {have} "
                "remain(s); training needs slides of every class (and at least two classes). "
                "Preprocess the missing slides or fix the labels")
