"""One ``.h5`` feature file per slide: per-level coords and features, written atomically.

Layout (``../shared/DESIGN.md``)::

    <slide_id>.h5
      attrs: extractor, extractor_config_hash, source_hash, dim, mpp, slide_id, format_version
      thumbnail/ x5/ x10/        one group per level
        coords   (N, 2) int64    level-0 px, top-left (x, y)
        features (N, C) float32
        attrs: patch_size, patch_size_level0, magnification, mpp, extractor,
               extractor_config_hash

A single-level CLAM/TRIDENT file (``coords`` and ``features`` datasets at the root) is read
as the ``x10`` level (its own magnification, when recorded, is kept in ``level_attrs``).

Writes are atomic (`napari_higt.io.atomic_path`): a reader sees the old file or the new
one, never half of one; a failed write (disk full, killed process) leaves no ``.h5`` behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError, FeatureStorageError
from napari_higt.features.provenance import source_hash
from napari_higt.features.validate import checked_level
from napari_higt.graph.hierarchy import HierarchicalGraph
from napari_higt.io import atomic_path, atomic_write_via, remove_stale_tmp
from napari_higt.levels import LEVELS, PATCH

__all__ = ["FeatureStore", "StoredFeatures", "read_graph", "source_hash", "atomic_feature_file",
           "FORMAT_VERSION"]

FORMAT_VERSION = 1
#: Root attrs copied into every level group as DESIGN.md lists them there too.
_GROUP_COPY = ("extractor", "extractor_config_hash", "mpp")


def _attr(v: Any) -> Any:
    """HDF5-storable form of an attribute value."""
    if v is None:
        return "none"
    if isinstance(v, (str, bytes, int, float, bool, np.integer, np.floating, np.bool_)):
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return np.asarray(v)
    import json

    return json.dumps(v, sort_keys=True, default=str)


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v



def atomic_feature_file(path: Path, what: str | None = None):
    """`napari_higt.io.atomic_path` for a feature file: OS errors become `FeatureError`.

    A full disk or read-only folder raises `FeatureStorageError` naming ``what`` (default:
    the path); ``path`` is untouched and no temporary file is left.
    """
    return atomic_path(path, what, error=FeatureStorageError)


@dataclass
class StoredFeatures:
    """What :meth:`FeatureStore.read` returns."""

    path: Path
    coords: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    level_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    layout: str = "higt"  # or "clam" for a single-level CLAM/TRIDENT file

    @property
    def extractor(self) -> str | None:
        return self.attrs.get("extractor")

    @property
    def dim(self) -> int:
        return int(next(iter(self.features.values())).shape[1])

    def counts(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.coords.items()}


class FeatureStore:
    """Reading and writing ``<slide_id>.h5`` feature files (static methods on any path)."""

    # ------------------------------------------------------------------ writing
    @staticmethod
    def write(
        path: str | os.PathLike,
        coords: Mapping[str, np.ndarray],
        features: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any] | None = None,
        level_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        """Write one slide's features atomically and return the path.

        Raises
        ------
        FeatureError
            Levels that do not match (unknown name, coords/features lengths, feature dims
            differing between levels) or the write failed (disk full, permissions); in the
            latter case the previous file, if any, is left untouched.
        """
        import h5py

        path = Path(path)
        if set(coords) != set(features):
            raise FeatureError(
                f"coords levels {sorted(coords)} != features levels {sorted(features)}"
            )
        unknown = set(coords) - set(LEVELS)
        if unknown:
            raise FeatureError(
                f"unknown level(s) {sorted(unknown)}; expected some of {list(LEVELS)}"
            )
        dims = set()
        arrays = {}
        for lvl in LEVELS:
            if lvl not in coords:
                continue
            c = np.asarray(coords[lvl], dtype=np.int64).reshape(-1, 2)
            f = np.asarray(features[lvl], dtype=np.float32)
            if f.ndim != 2 or len(f) != len(c):
                raise FeatureError(
                    f"level {lvl}: {len(c)} coords but features of shape {tuple(f.shape)}"
                )
            dims.add(f.shape[1])
            arrays[lvl] = (c, f)
        if len(dims) > 1:
            raise FeatureError(f"feature dims differ between levels: {sorted(dims)}")
        attrs = dict(attrs or {})
        attrs.setdefault("format_version", FORMAT_VERSION)
        if dims:
            attrs["dim"] = int(dims.pop())
        level_attrs = {k: dict(v) for k, v in (level_attrs or {}).items()}

        def fill(fh) -> None:
            with h5py.File(fh, "w") as h5:
                for k, v in attrs.items():
                    h5.attrs[k] = _attr(v)
                for lvl, (c, f) in arrays.items():
                    g = h5.create_group(lvl)
                    g.create_dataset("coords", data=c)
                    chunks = (min(len(f), 1024), f.shape[1]) if len(f) and f.shape[1] else None
                    g.create_dataset("features", data=f, chunks=chunks)
                    for k in _GROUP_COPY:
                        if k in attrs:
                            g.attrs[k] = _attr(attrs[k])
                    for k, v in level_attrs.get(lvl, {}).items():
                        g.attrs[k] = _attr(v)

        # built in memory: h5py can crash the process when the disk fills under it
        return atomic_write_via(path, fill, f"feature file {path.name}", FeatureStorageError)

    # ------------------------------------------------------------------ reading
    @staticmethod
    def read(
        path: str | os.PathLike,
        extractor: str | None = None,
        dim: int | None = None,
        levels: tuple[str, ...] | None = None,
    ) -> StoredFeatures:
        """Read a feature file (this package's layout or a CLAM/TRIDENT single-level one).

        Parameters
        ----------
        extractor, dim : optional
            When given, the file must have been written by that extractor (when it says) and
            hold features of that width; otherwise ``FeatureError`` says what differs.
        levels : optional
            Read only these levels.
        """
        import h5py

        path = Path(path)
        if not path.is_file():
            raise FeatureError(f"feature file not found: {path}")
        try:
            with h5py.File(path, "r") as h5:
                attrs, raw, lattrs, layout = _read_levels(h5, path, levels)
        except OSError as exc:  # not HDF5, truncated, zero bytes, a damaged dataset
            raise FeatureError(f"{path} is not a readable HDF5 feature file (truncated or "
                               f"corrupt: {str(exc).splitlines()[0][:120]}); recompute it "
                               "(napari-higt preprocess --overwrite)") from None
        coords: dict[str, np.ndarray] = {}
        feats: dict[str, np.ndarray] = {}
        for lvl, (c, f) in raw.items():
            coords[lvl], feats[lvl] = checked_level(path, lvl, c, f)
        out = StoredFeatures(path, coords, feats, attrs, lattrs, layout)
        FeatureStore.check(out, extractor=extractor, dim=dim)
        return out

    @staticmethod
    def check(data: StoredFeatures, extractor: str | None = None, dim: int | None = None) -> None:
        """``FeatureError`` when ``data`` was written by another extractor or has another dim."""
        if extractor is not None and data.extractor not in (None, "none", extractor):
            raise FeatureError(
                f"{data.path} was written by the '{data.extractor}' extractor, not "
                f"'{extractor}'; recompute it with --extractor {extractor} (into another --out "
                "folder or with --overwrite) or use a model trained on "
                f"'{data.extractor}' features"
            )
        if dim is not None and data.features and data.dim != int(dim):
            raise FeatureError(
                f"{data.path} holds {data.dim}-dim features but {int(dim)} were expected "
                f"(extractor '{data.extractor}'); the features and the model/extractor do not "
                "match"
            )

    @staticmethod
    def read_attrs(path: str | os.PathLike) -> dict[str, Any] | None:
        """Root attrs of a feature file, or None when it is missing or unreadable."""
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                return {k: _py(v) for k, v in h5.attrs.items()}
        except (OSError, KeyError):
            return None

    @staticmethod
    def is_done(path: str | os.PathLike, source: str, config: str) -> bool:
        """True when ``path`` holds features of the same slide content and extractor config."""
        a = FeatureStore.read_attrs(path)
        return (bool(a) and a.get("source_hash") == source
                and a.get("extractor_config_hash") == config)

    #: Delete temporary files left by interrupted writes of a path (dead writers only).
    remove_stale_tmp = staticmethod(remove_stale_tmp)


def _read_levels(h5, path: Path, levels: tuple[str, ...] | None
                 ) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]], dict, str]:
    """(root attrs, {level: (coords, features) as stored}, level attrs, layout) of a file."""
    import h5py

    attrs = {k: _py(v) for k, v in h5.attrs.items()}
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lattrs: dict[str, dict] = {}
    if any(isinstance(h5.get(lvl), h5py.Group) for lvl in LEVELS):
        for lvl in LEVELS:
            g = h5.get(lvl)
            if not isinstance(g, h5py.Group) or (levels and lvl not in levels):
                continue
            if not all(isinstance(g.get(k), h5py.Dataset) for k in ("coords", "features")):
                raise FeatureError(f"{path}: group {lvl} lacks coords or features")
            raw[lvl] = (g["coords"][()], g["features"][()])
            lattrs[lvl] = {k: _py(v) for k, v in g.attrs.items()}
        return attrs, raw, lattrs, "higt"
    if not isinstance(h5.get("features"), h5py.Dataset):
        raise FeatureError(
            f"{path} holds no features: expected groups {list(LEVELS)} or root "
            "'coords'/'features' datasets (CLAM/TRIDENT)"
        )
    f = np.asarray(h5["features"][()])
    if f.ndim == 3 and 1 in f.shape[:2]:
        f = f.reshape(-1, f.shape[-1]) if f.shape[1] == 1 else f[0]
    if not isinstance(h5.get("coords"), h5py.Dataset):
        raise FeatureError(f"{path}: a CLAM/TRIDENT file without 'coords'")
    ca = {k: _py(v) for k, v in h5["coords"].attrs.items()}
    la: dict[str, Any] = {}
    for k in ("patch_size", "patch_level", "target_magnification",
              "level0_magnification", "patch_size_level0", "overlap", "name"):
        if k in ca:
            la[k] = ca[k]
    if "patch_size_level0" not in la and la.get("patch_level") == 0 and "patch_size" in ca:
        la["patch_size_level0"] = ca["patch_size"]
    if "patch_size_level0" not in la and all(
            k in la for k in ("patch_size", "level0_magnification",
                              "target_magnification")):  # TRIDENT's own rule
        la["patch_size_level0"] = (la["patch_size"] * la["level0_magnification"]
                                   / la["target_magnification"])
    if "target_magnification" in la:
        la["magnification"] = la["target_magnification"]
    raw[PATCH] = (h5["coords"][()], f)
    lattrs[PATCH] = la
    return attrs, raw, lattrs, "clam"


def read_graph(path: str | Path, extractor: str | None = None,
               dim: int | None = None) -> HierarchicalGraph:
    """The hierarchical graph of one feature file, in the node order every consumer uses.

    Parameters
    ----------
    path
        A feature file (this project's layout or CLAM/TRIDENT single-level).
    extractor, dim
        When given, must match the file, else :class:`~napari_higt.errors.FeatureError`.

    Returns
    -------
    HierarchicalGraph
        Built by :meth:`HierarchicalGraph.from_arrays` with the patch sizes the file records.
    """
    data = FeatureStore.read(path, extractor=extractor, dim=dim)
    sizes = {lvl: float(a["patch_size_level0"]) for lvl, a in data.level_attrs.items()
             if "patch_size_level0" in a}
    return HierarchicalGraph.from_arrays(
        data.coords, data.features, patch_size=sizes or None, slide_id=Path(path).stem
    )
