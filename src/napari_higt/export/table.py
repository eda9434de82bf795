"""CSV of node scores: one row per node."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_higt.io import atomic_write_text

__all__ = ["write_node_csv"]


def write_node_csv(
    path: str | os.PathLike,
    coords: np.ndarray,
    sizes: np.ndarray | float,
    levels: np.ndarray | list[str],
    scores: Mapping[str, np.ndarray],
    slide_id: str | None = None,
    node_ids: np.ndarray | None = None,
) -> Path:
    """Write ``node,level,x,y,size,<score>...`` rows (level-0 px) atomically.

    A NaN score (one that does not exist for the node, e.g. a region -> patch interaction
    on an x5 region) is written as an empty cell, never as 0.

    Parameters
    ----------
    path : path
    coords : (N, 2) array
        Top-left (x, y) of each node's tile, level-0 px.
    sizes : float or (N,) array
        Tile sides in level-0 px.
    levels : (N,) sequence of str
    scores : mapping name -> (N,) array
    slide_id : str, optional
        Written as a first column when given (handy when concatenating slides).
    node_ids : (N,) ints, optional
        The ``node`` column: the graph's node ids (those of the inspector and of
        ``result.scores[name][node]``); 0..N-1 by default.
    """
    coords = np.asarray(coords).reshape(-1, 2)
    n = len(coords)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), (n,))
    ids = np.arange(n) if node_ids is None else np.asarray(node_ids).reshape(-1)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} node ids for {n} nodes")
    cols = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    for k, v in cols.items():
        if len(v) != n:
            raise ValueError(f"score {k!r} has {len(v)} values for {n} nodes")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = (["slide_id"] if slide_id else []) + ["node", "level", "x", "y", "size", *cols]
    w.writerow(head)
    for i in range(n):
        row = ([slide_id] if slide_id else []) + [
            int(ids[i]), str(levels[i]), int(coords[i, 0]), int(coords[i, 1]),
            f"{sizes[i]:g}", *(_cell(cols[k][i]) for k in cols)]
        w.writerow(row)
    return atomic_write_text(path, buf.getvalue())


def _cell(v: float) -> str:
    return repr(float(v)) if np.isfinite(v) else ""
