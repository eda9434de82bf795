"""TRIDENT-compatible feature files: one level, ``features`` and ``coords`` at the root.

TRIDENT (https://github.com/mahmoodlab/TRIDENT, ``OpenSlideWSI.extract_patch_features``)
writes ``<name>.h5`` with two root datasets -- ``features`` (N, D) and ``coords`` (N, 2),
level-0 px, top-left -- and the patching settings as attributes of ``coords``:
``patch_size`` (px at the target magnification), ``patch_size_level0``,
``level0_magnification``, ``target_magnification``, ``overlap``, ``name``, ``savetodir``;
``features`` carries ``name`` and ``savetodir``. `write_trident` writes that layout (for
the x10 level of ``preprocess --layout trident``) plus this project's provenance as root
attributes (extractor, config hash, slide hash), which TRIDENT ignores and which let a rerun
skip a file already done. ``FeatureStore.read`` reads such a file back as its ``x10`` level
with the ``coords`` attributes as level attributes, so the graph uses the recorded patch size
in level-0 px instead of guessing it from the coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError, FeatureStorageError

__all__ = ["write_trident", "trident_coords_attrs", "magnification"]


def magnification(mpp: float) -> float | int:
    """Objective magnification of ``mpp`` µm/px (10x = 1 µm/px); an int within 0.1 of one."""
    mag = 10.0 / float(mpp)
    return int(round(mag)) if abs(mag - round(mag)) <= 0.1 else round(mag, 3)


def trident_coords_attrs(name: str, patch_size: int, patch_size_level0: float,
                         slide_mpp: float, target_mpp: float, out_dir: str | Path,
                         overlap: int = 0) -> dict[str, Any]:
    """The ``coords`` attributes of a TRIDENT file for tiles of one level."""
    return {
        "patch_size": int(patch_size),
        "patch_size_level0": int(round(float(patch_size_level0))),
        "level0_magnification": magnification(slide_mpp),
        "target_magnification": magnification(target_mpp),
        "overlap": int(overlap),
        "name": str(name),
        "savetodir": str(out_dir),
    }


def write_trident(path: str | Path, coords: np.ndarray, features: np.ndarray,
                  coords_attrs: Mapping[str, Any],
                  attrs: Mapping[str, Any] | None = None) -> Path:
    """Write one level's features as a TRIDENT file, atomically, and return the path.

    Parameters
    ----------
    path : the ``.h5`` file to write
    coords : (N, 2) level-0 px, top-left (x, y)
    features : (N, D) float32
    coords_attrs : from `trident_coords_attrs` (``patch_size_level0`` is required)
    attrs : provenance written as root attributes

    Raises
    ------
    FeatureError
        Shapes that do not match or ``patch_size_level0`` missing.
    FeatureStorageError
        The write failed (full disk, read-only folder); nothing was written.
    """
    import h5py

    from napari_higt.features.store import _attr
    from napari_higt.io import atomic_write_via

    path = Path(path)
    c = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or len(f) != len(c):
        raise FeatureError(f"{path}: {len(c)} coords but features of shape {tuple(f.shape)}")
    if "patch_size_level0" not in coords_attrs:
        raise FeatureError(f"{path}: a TRIDENT file needs coords attr 'patch_size_level0'")
    def fill(fh) -> None:  # in memory, as FeatureStore.write: a full disk cannot crash h5py
        with h5py.File(fh, "w") as h5:
            for k, v in dict(attrs or {}).items():
                h5.attrs[k] = _attr(v)
            h5.attrs["dim"] = int(f.shape[1])
            dc = h5.create_dataset("coords", data=c)
            df = h5.create_dataset("features", data=f)
            for k, v in coords_attrs.items():
                dc.attrs[k] = _attr(v)
            df.attrs["name"] = str(coords_attrs.get("name", path.stem))
            df.attrs["savetodir"] = str(coords_attrs.get("savetodir", path.parent))

    return atomic_write_via(path, fill, f"feature file {path.name}", FeatureStorageError)
