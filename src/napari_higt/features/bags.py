"""Bags of instance features: one ``(N, C)`` matrix per slide, read from ``.pt`` or ``.h5``.

The feature format most MIL pipelines write (CLAM's ``pt_files/``, HIPT, DS-MIL, TransMIL):

* ``<slide_id>.pt``: a 2-D float tensor, or a dict with a ``features`` tensor, read with
  ``torch.load(..., weights_only=True)`` (no code runs from the file);
* ``<slide_id>.h5``: a root ``features`` dataset (CLAM/TRIDENT, with or without ``coords``),
  or a file of ``napari-higt preprocess`` (its ``x10`` patch features).

A bag has no graph: the models that need patch positions (HIGT, H2-MIL) need files that carry
coordinates (:data:`COORDINATE_FORMATS`). Every file is checked (2-D, floating point, at least
one row, finite, the width of the other files); :func:`read_bag_folder` collects one line per
bad file instead of stopping at the first, so a user sees everything to fix at once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_higt.errors import FeatureError

__all__ = ["BAG_SUFFIXES", "COORDINATE_FORMATS", "BagError", "Bag", "BagFolder", "read_bag",
           "bag_files", "coordinate_free_files", "read_bag_folder"]

BAG_SUFFIXES = (".pt", ".h5")
#: The feature files that carry patch coordinates (what graph models need).
COORDINATE_FORMATS = (
    "the .h5 files of `napari-higt preprocess` or CLAM/TRIDENT .h5 files with `coords` and "
    "`features`")


class BagError(FeatureError):
    """One feature file cannot be used as a bag; the message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path.name}: {reason}")


@dataclass
class Bag:
    """The features of one slide (float32, C-contiguous) and whether its file has coords."""

    slide_id: str
    features: np.ndarray
    has_coords: bool
    path: Path


def _from_pt(path: Path) -> tuple[object, bool]:
    import pickle

    import torch

    unreadable = BagError(path, "is not a readable torch file (neither a torch.save archive "
                                "nor a pickle); re-export it")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    # torch.save writes a zip archive (legacy: a pickle stream, protocol byte 0x80); anything
    # else would only reach the unpickler's generic "weights only load failed" message.
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):
        raise unreadable
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BagError(path, "holds Python objects other than tensors (a pickle torch will "
                             "not load with weights_only=True); save the features with "
                             "torch.save(tensor)") from None
    except Exception:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise unreadable from None
    if isinstance(obj, dict):
        if "features" not in obj:
            raise BagError(path, f"is a dict without a 'features' entry (keys: "
                                 f"{sorted(map(str, obj))[:6]}); save the tensor or "
                                 "{'features': tensor}")
        obj = obj["features"]
    if not isinstance(obj, torch.Tensor):
        raise BagError(path, f"holds a {type(obj).__name__}, not a tensor; save the "
                             "features as a 2-D float tensor")
    # numpy has no bfloat16: floats go through float32 (the dtype every bag ends up in)
    return (obj.detach().float() if obj.is_floating_point() else obj).numpy(), False


def _from_h5(path: Path) -> tuple[object, bool]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "features" in f and isinstance(f["features"], h5py.Dataset):
                return f["features"][()], "coords" in f
            if "x10" in f and "features" in f["x10"]:
                return f["x10/features"][()], "coords" in f["x10"]
            keys = sorted(f.keys())[:6]
    except OSError as exc:
        raise BagError(path, f"is not a readable HDF5 file ({exc.args[0] if exc.args else exc})"
                             "; re-export it") from None
    raise BagError(path, f"has no 'features' dataset (top level: {keys}); give a CLAM/TRIDENT "
                         "file with a root 'features' dataset or a napari-higt feature file")


def read_bag(path: str | os.PathLike, dim: int | None = None) -> Bag:
    """Read and check one bag file.

    Parameters
    ----------
    path : path-like
        A ``.pt`` or ``.h5`` file (see the module docstring).
    dim : int, optional
        The feature width the file must have.

    Raises
    ------
    BagError
        Unreadable, not a tensor, not 2-D, not floating point, empty, non-finite values, or
        another width than ``dim``.
    """
    path = Path(path)
    if path.suffix.lower() not in BAG_SUFFIXES:
        raise BagError(path, f"is not a bag file ({' or '.join(BAG_SUFFIXES)})")
    if not path.is_file() or path.stat().st_size == 0:
        raise BagError(path, "is empty or missing (0 bytes); re-export it")
    arr, has_coords = (_from_pt if path.suffix.lower() == ".pt" else _from_h5)(path)
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise BagError(path, f"holds a {arr.ndim}-D array of shape {tuple(arr.shape)}; a bag is "
                             "2-D (instances x features)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise BagError(path, f"holds {arr.dtype} values; features must be floating point")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BagError(path, f"is an empty bag (shape {tuple(arr.shape)}); drop the slide or "
                             "re-extract its features")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = int(bad.any(1).sum())
        raise BagError(path, f"has NaN or infinite values in {rows} of {arr.shape[0]} rows; "
                             "re-extract its features")
    if dim is not None and arr.shape[1] != dim:
        raise BagError(path, f"has {arr.shape[1]} features per instance, the other files "
                             f"{dim}; use files of one extractor")
    return Bag(path.stem, np.ascontiguousarray(arr, dtype=np.float32), has_coords, path)


@dataclass
class BagFolder:
    """What :func:`read_bag_folder` found.

    Attributes
    ----------
    bags : the good bags, by slide id, in the order asked for
    bad : one line per unusable file (``<file>: <what is wrong; what to do>``)
    dim : the feature width of the folder (the most common one)
    """

    bags: dict[str, Bag]
    bad: list[str] = field(default_factory=list)
    dim: int | None = None


def bag_files(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """Bag files of ``folder`` by slide id (a list: a slide may have a .pt and an .h5)."""
    out: dict[str, list[Path]] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in BAG_SUFFIXES and not p.name.startswith("."):
            out.setdefault(p.stem, []).append(p)
    return out


def read_bag_folder(folder: str | os.PathLike,
                    slide_ids: Sequence[str] | None = None) -> BagFolder:
    """Read the bags of ``slide_ids`` (default: every bag file) from ``folder``.

    Never raises for a bad file: it is listed in :attr:`BagFolder.bad`. Slides without a file
    are not listed (the caller knows which slides it asked for).

    Raises
    ------
    FeatureError
        The folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FeatureError(f"features folder not found: {folder}")
    files = bag_files(folder)
    ids = list(files) if slide_ids is None else [s for s in slide_ids if s in files]
    good: dict[str, Bag] = {}
    bad: list[str] = []
    for sid in ids:
        if len(files[sid]) > 1:
            bad.append(f"{sid}: has {len(files[sid])} feature files "
                       f"({', '.join(p.name for p in files[sid])}); keep one")
            continue
        try:
            good[sid] = read_bag(files[sid][0])
        except BagError as exc:
            bad.append(str(exc))
    widths = Counter(b.features.shape[1] for b in good.values())
    dim = widths.most_common(1)[0][0] if widths else None
    for sid in [s for s, b in good.items() if b.features.shape[1] != dim]:
        b = good.pop(sid)
        bad.append(str(BagError(b.path, f"has {b.features.shape[1]} features per instance, "
                                        f"the other files {dim}; use files of one extractor")))
    return BagFolder(good, bad, dim)


def _has_coords(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "coords" in f or ("x10" in f and "coords" in f["x10"])
    except OSError:
        return True  # unreadable: the graph reader names it with its own message


def coordinate_free_files(features_dir: str | os.PathLike,
                          slide_ids: list[str] | None = None) -> list[str]:
    """Names of the bag files (of ``slide_ids``, default all) that carry no coordinates."""
    files = bag_files(features_dir)
    ids = files if slide_ids is None else [s for s in slide_ids if s in files]
    return [p.name for s in ids for p in files[s]
            if p.suffix.lower() == ".pt" or not _has_coords(p)]
