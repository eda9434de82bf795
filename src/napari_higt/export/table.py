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
) -> Path:
    """Write ``node,level,x,y,size,<score>...`` rows (level-0 px) atomically.

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
    """
    coords = np.asarray(coords).reshape(-1, 2)
    n = len(coords)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), (n,))
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
            i, str(levels[i]), int(coords[i, 0]), int(coords[i, 1]), f"{sizes[i]:g}",
            *(repr(float(cols[k][i])) for k in cols)]
        w.writerow(row)
    return atomic_write_text(path, buf.getvalue())
