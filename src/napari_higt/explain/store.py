"""The ``explain/`` group of a feature file: per-node scores cached next to the features,
so the viewer can paint them without rerunning the model::

    explain/                      attrs: checkpoint, model, class_names (JSON), pred,
                                         probs (JSON), num_nodes, reductions (JSON),
                                         card (JSON, the model card), warnings (JSON)
      level          (N,) int8    node level (0 thumbnail, 1 x5, 2 x10), graph node order
      coords         (N, 2) int64 level-0 px top-left
      <score>        (N,) float32 one per score the model has (names: `explain.registry`)
      edge_attention (E,) float32 RAConv(+) layer-1 coefficient of every input edge (edge
                                  order of ``features.store.read_graph``)

The node order is the one of ``features.store.read_graph`` on the same file (it may hold
more x5 nodes than the file when regions were made up for orphan patches).

The feature file is updated atomically: its bytes are read into memory, ``explain/`` is
replaced there, and the result is written to a temporary file beside it and renamed over the
original (`napari_higt.io.atomic_write_bytes`) -- a reader never sees a half-written file,
and a full disk ends in a one-line error, never a crash of h5py.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError, FeatureStorageError
from napari_higt.io import atomic_write_bytes

__all__ = ["EXPLAIN_GROUP", "write_node_scores", "read_node_scores"]

EXPLAIN_GROUP = "explain"


def write_node_scores(path: str | os.PathLike, scores: dict[str, np.ndarray],
                      attrs: dict[str, Any] | None = None,
                      level: np.ndarray | None = None,
                      coords: np.ndarray | None = None) -> Path:
    """Replace the ``explain/`` group of feature file ``path`` atomically (see module doc).

    Raises
    ------
    FeatureError
        The file is missing or not HDF5, or the write failed (the original is untouched).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"feature file not found: {path}")
    try:
        buf = io.BytesIO(path.read_bytes())
        h5 = h5py.File(buf, "r+")
    except OSError as exc:
        raise FeatureError(f"{path} is not a readable HDF5 feature file ({exc})") from None
    with h5:
        if EXPLAIN_GROUP in h5:
            del h5[EXPLAIN_GROUP]
        g = h5.create_group(EXPLAIN_GROUP)
        for k, v in (attrs or {}).items():
            g.attrs[k] = v if isinstance(v, (str, int, float, bool, np.number)) \
                else json.dumps(v, default=str)
        if level is not None:
            g.create_dataset("level", data=np.asarray(level, dtype=np.int8))
        if coords is not None:
            g.create_dataset("coords", data=np.asarray(coords, dtype=np.int64))
        for name, v in scores.items():
            g.create_dataset(name, data=np.asarray(v, dtype=np.float32))
    return atomic_write_bytes(path, buf.getvalue(), f"node scores into {path.name}",
                              FeatureStorageError)


def read_node_scores(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(scores, attrs)`` of the ``explain/`` group, or None when the file has none.

    Raises
    ------
    FeatureError
        The file is missing, truncated or not HDF5.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"feature file not found: {path}")
    try:
        return _read_explain(h5py.File(path, "r"))
    except OSError as exc:
        raise FeatureError(f"{path} is not a readable HDF5 feature file (truncated or "
                           f"corrupt: {str(exc).splitlines()[0][:120]})") from None


def _read_explain(h5) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    with h5:
        if EXPLAIN_GROUP not in h5:
            return None
        g = h5[EXPLAIN_GROUP]
        scores = {k: np.asarray(g[k][()]) for k in g.keys()}
        attrs = {}
        for k, v in g.attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            attrs[k] = v.item() if isinstance(v, np.generic) else v
        return scores, attrs
