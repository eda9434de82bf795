"""Slide graphs + labels: the dataset the training engine and the CLI read.

The labels CSV (``slide_id,label[,fold]``) is read by `napari_higt.labels.read_labels`;
class index ``i`` means ``class_names[i]`` everywhere (logits, checkpoints, prediction CSVs).

``SlideGraphDataset.from_folder(features_dir, labels_csv)`` pairs every labelled slide with
``<features_dir>/<slide_id>.h5``; slides with a label but no feature file, and feature files
with no label, are listed in ``missing_features`` / ``unlabelled`` and skipped with one
warning. Graphs are built on demand (``features.store.read_graph(...).to_pyg()``) and kept
in memory when ``cache=True``. ``SlideGraphDataset.from_graphs`` wraps graphs already in memory
(tests, notebooks, the benchmark).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError, short_list
from napari_higt.labels import read_labels
from napari_higt.training.labelled import LabelledSlides, class_indices, warn_unpaired

__all__ = ["SlideGraphDataset", "load_graph"]


def load_graph(path: str | os.PathLike, extractor: str | None = None,
               dim: int | None = None) -> Any:
    """PyG ``Data`` of one feature file (``slide_id`` set, ``num_nodes`` set)."""
    from napari_higt.features.store import read_graph

    g = read_graph(path, extractor=extractor, dim=dim)
    data = g.to_pyg()
    data.slide_id = g.slide_id or Path(path).stem
    return data


@dataclass
class SlideGraphDataset(LabelledSlides):
    """Labelled slide graphs. ``ds[i]`` is a PyG ``Data`` with ``y`` (1,) and ``slide_id``.

    Attributes
    ----------
    slide_ids, y : the usable slides and their class indices
    class_names : list of str
    folds : per-slide fold from the CSV, or None
    paths : feature file per slide (None for in-memory graphs)
    missing_features : labelled slides without a feature file (skipped)
    unlabelled : feature files without a label (skipped)
    extractor : extractor name recorded in the feature files (None when unknown)
    groups, group_column : the group of every slide (a CSV column) or None
    """

    slide_ids: list[str]
    y: np.ndarray
    class_names: list[str]
    folds: np.ndarray | None = None
    paths: list[Path | None] = field(default_factory=list)
    cache: bool = True
    missing_features: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    extractor: str | None = None
    groups: np.ndarray | None = None
    group_column: str | None = None
    _graphs: dict[int, Any] = field(default_factory=dict, repr=False)
    _in_dim: int | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_folder(cls, features_dir: str | os.PathLike, labels_csv: str | os.PathLike,
                    cache: bool = True, extractor: str | None = None,
                    group_column: str | None = None) -> SlideGraphDataset:
        """Pair ``<features_dir>/<slide_id>.h5`` with the labels CSV (see module docstring).

        ``group_column``: a column of the CSV whose slides stay in one fold (a patient).

        Raises
        ------
        FeatureError
            No labelled slide has a feature file, or the files mix extractors / dims.
        LabelError
            Unusable labels CSV.
        """
        from napari_higt.features.store import FeatureStore

        features_dir = Path(features_dir)
        if not features_dir.is_dir():
            raise FeatureError(f"features folder not found: {features_dir}")
        table = read_labels(labels_csv, group_column=group_column)
        files = {p.stem: p for p in sorted(features_dir.glob("*.h5")) if not p.name.startswith(".")}
        keep = [i for i, s in enumerate(table.slide_ids) if s in files]
        missing = [s for s in table.slide_ids if s not in files]
        unlabelled = sorted(set(files) - set(table.slide_ids))
        if not keep:
            raise FeatureError(
                f"none of the {len(table.slide_ids)} slides of {labels_csv} has a feature file "
                f"<slide_id>.h5 in {features_dir} ({len(files)} .h5 files there); run "
                "`napari-higt preprocess` first or check the slide ids"
            )
        warn_unpaired(missing, unlabelled)
        ids = [table.slide_ids[i] for i in keep]
        y = table.index()[keep]
        folds = np.asarray(table.folds, dtype=np.int64)[keep] if table.folds is not None else None
        extractors, dims = set(), set()
        for s in ids:
            a = FeatureStore.read_attrs(files[s]) or {}
            if a.get("extractor") not in (None, "none"):
                extractors.add(str(a["extractor"]))
            if "dim" in a:
                dims.add(int(a["dim"]))
        if len(extractors) > 1:
            raise FeatureError(
                f"the feature files in {features_dir} come from different extractors "
                f"({sorted(extractors)}); train on files of one extractor"
            )
        if len(dims) > 1:
            raise FeatureError(f"the feature files in {features_dir} have different feature "
                               f"dims {sorted(dims)}")
        ds = cls(ids, y, list(table.class_names), folds, [files[s] for s in ids], cache,
                 missing, unlabelled, extractors.pop() if extractors else None)
        ds._in_dim = dims.pop() if dims else None
        if table.groups is not None:
            ds.groups = np.asarray(table.groups, dtype=object)[keep]
            ds.group_column = group_column
        ds.check_classes(f"of {Path(labels_csv).name} with a feature file in {features_dir}")
        ds.check_files()
        return ds

    def check_files(self) -> None:
        """Read every feature file once (kept when caching); refuse the run if any is bad.

        Raises
        ------
        FeatureError
            Naming every unusable file (unreadable, NaN / infinite features, wrong shapes)
            and the first one's reason, before any training starts.
        """
        bad: list[tuple[str, str]] = []
        for i, p in enumerate(self.paths):
            if p is None:
                continue
            try:
                g = load_graph(p, extractor=self.extractor)
            except FeatureError as exc:
                bad.append((Path(p).name, str(exc)))
                continue
            if self.cache:
                self._graphs[i] = g
        if bad:
            others = (f"; also unusable: {short_list([b for b, _ in bad[1:]])}"
                      if len(bad) > 1 else "")
            raise FeatureError(f"{len(bad)} feature file(s) cannot be used for training: "
                               f"{bad[0][1]}{others}")

    @classmethod
    def from_graphs(cls, graphs: Sequence[Any], labels: Sequence[int] | Sequence[str],
                    class_names: Sequence[str] | None = None,
                    slide_ids: Sequence[str] | None = None,
                    folds: Sequence[int] | None = None,
                    extractor: str | None = None) -> SlideGraphDataset:
        """Wrap PyG graphs already in memory; labels are class indices or class names."""
        y, class_names = class_indices(labels, class_names)
        if slide_ids is None:
            slide_ids = [str(getattr(g, "slide_id", None) or f"slide_{i:04d}")
                         for i, g in enumerate(graphs)]
        ds = cls(list(slide_ids), y, class_names,
                 None if folds is None else np.asarray(folds, dtype=np.int64),
                 [None] * len(graphs), True, extractor=extractor)
        ds._graphs = dict(enumerate(graphs))
        return ds

    # ------------------------------------------------------------------ access
    @property
    def in_dim(self) -> int:
        """Node feature width (read from the files' attrs or the first graph)."""
        if self._in_dim is None:
            self._in_dim = int(self._graph(0).x.size(1))
        return self._in_dim

    def _graph(self, i: int) -> Any:
        g = self._graphs.get(i)
        if g is None:
            p = self.paths[i]
            g = load_graph(p, extractor=self.extractor)
            if self.cache:
                self._graphs[i] = g
        return g

    def __getitem__(self, i: int) -> Any:
        import copy

        import torch

        out = copy.copy(self._graph(int(i)))  # shallow: y / slide_id are set per item
        out.y = torch.tensor([int(self.y[i])], dtype=torch.long)
        out.slide_id = self.slide_ids[int(i)]
        return out

    def summary(self) -> str:
        return f"{len(self)} slides ({self.class_summary()})"
