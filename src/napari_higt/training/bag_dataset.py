"""Labelled bags without a graph: the dataset of the MIL models on ``.pt`` / features-only
``.h5`` feature folders (``features/bags.py``).

Every bag is read once, checked, and kept in one contiguous ``(sum N_i, C)`` tensor; a batch
is an index gather into it (:meth:`BagDataset.collate`), so an epoch over a thousand small
bags costs its arithmetic, not a thousand file reads or Python graph objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError
from napari_higt.features.bags import bag_files, read_bag_folder
from napari_higt.labels import read_labels
from napari_higt.training.labelled import LabelledSlides, class_indices, warn_unpaired

__all__ = ["BagDataset"]


@dataclass
class BagDataset(LabelledSlides):
    """Labelled bags. ``collate(idx)`` -> :class:`BagBatch`; ``ds[i]`` one bag as a batch.

    Attributes
    ----------
    slide_ids, y, class_names, folds, groups
        The usable slides, class indices, class names, the CSV's fold column (or None) and
        the group of every slide (or None: every slide its own group).
    x : Tensor (sum N_i, C)
        All bags, one after the other; ``offsets[i]:offsets[i + 1]`` are the rows of bag i.
    skipped : one line per bad file left out (``skip_bad=True``)
    missing_features, unlabelled : as :class:`SlideGraphDataset`

    Length, classes, class counts and the class check come from
    `training.labelled.LabelledSlides`, shared with :class:`SlideGraphDataset`.
    """

    slide_ids: list[str]
    y: np.ndarray
    class_names: list[str]
    x: Any
    offsets: np.ndarray
    folds: np.ndarray | None = None
    groups: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    extractor: str | None = None
    group_column: str | None = None
    #: Bags carry no positions: graph models cannot read this dataset.
    has_coords: bool = False

    @classmethod
    def from_folder(cls, features_dir: str | os.PathLike, labels_csv: str | os.PathLike,
                    group_column: str | None = None, skip_bad: bool = False) -> BagDataset:
        """Pair every labelled slide with ``<features_dir>/<slide_id>.pt|.h5``.

        Raises
        ------
        FeatureError
            Bad files without ``skip_bad`` (one line per file), no usable bag, or a class
            without a usable bag.
        LabelError
            Unusable labels CSV or group column.
        """
        table = read_labels(labels_csv, group_column=group_column)
        folder = read_bag_folder(features_dir, table.slide_ids)
        if folder.bad and not skip_bad:
            raise FeatureError(
                f"{len(folder.bad)} feature file(s) in {features_dir} cannot be used (fix them, "
                "or pass --skip-bad to train without them):\n" + "\n".join(folder.bad))
        files = bag_files(features_dir)
        keep = [i for i, s in enumerate(table.slide_ids) if s in folder.bags]
        missing = [s for s in table.slide_ids if s not in files]
        unlabelled = sorted(set(files) - set(table.slide_ids))
        if not keep:
            raise FeatureError(
                f"none of the {len(table.slide_ids)} slides of {labels_csv} has a usable bag "
                f"<slide_id>.pt or .h5 in {features_dir}; check the slide ids")
        warn_unpaired(missing, unlabelled,
                      [f"{len(folder.bad)} bad feature file(s) skipped"] if folder.bad else [])
        ids = [table.slide_ids[i] for i in keep]
        groups = (np.asarray(table.groups, dtype=object)[keep]
                  if table.groups is not None else None)
        folds = np.asarray(table.folds, dtype=np.int64)[keep] if table.folds is not None else None
        ds = cls.from_arrays([folder.bags[s].features for s in ids], table.index()[keep],
                             table.class_names, ids, folds=folds, groups=groups,
                             skipped=folder.bad, missing_features=missing,
                             unlabelled=unlabelled, group_column=group_column)
        ds.check_classes(f"of {os.path.basename(labels_csv)} with a usable bag in "
                         f"{features_dir}")
        return ds

    @classmethod
    def from_arrays(cls, bags: Sequence[Any], labels: Sequence[int] | Sequence[str],
                    class_names: Sequence[str] | None = None,
                    slide_ids: Sequence[str] | None = None, **kw: Any) -> BagDataset:
        """Bags already in memory (``(N_i, C)`` arrays or tensors); labels are class
        indices or class names."""
        import torch

        y, class_names = class_indices(labels, class_names)
        mats = [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in bags]
        sizes = np.array([m.shape[0] for m in mats], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        ids = list(slide_ids) if slide_ids is not None else [f"slide_{i:04d}"
                                                              for i in range(len(mats))]
        for k in ("folds", "groups"):
            if kw.get(k) is not None:
                kw[k] = np.asarray(kw[k])
        return cls(ids, y, class_names, torch.cat(mats).contiguous(), offsets, **kw)

    # ------------------------------------------------------------------ access
    @property
    def in_dim(self) -> int:
        return int(self.x.shape[1])

    def collate(self, indices: Sequence[int]) -> Any:
        """The bags ``indices`` (in that order) and their labels as one :class:`BagBatch`."""
        import torch

        from napari_higt.models.bag import BagBatch

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        start, stop = self.offsets[idx], self.offsets[idx + 1]
        sizes = stop - start
        # rows of every bag, concatenated: start_j + 0..n_j-1 without a Python loop
        rows = np.repeat(start - np.cumsum(np.concatenate([[0], sizes[:-1]])), sizes) \
            + np.arange(int(sizes.sum()))
        batch = torch.from_numpy(np.repeat(np.arange(len(idx)), sizes))
        return BagBatch(self.x[torch.from_numpy(rows)], batch,
                        torch.from_numpy(self.y[idx].copy()), len(idx))

    def __getitem__(self, i: int) -> Any:
        return self.collate([int(i)])

    def summary(self) -> str:
        counts = self.class_summary()
        sizes = np.diff(self.offsets)
        return (f"{len(self)} bags ({counts}); {self.in_dim} features, {int(np.median(sizes))} "
                f"instances per bag (median), no coordinates")
