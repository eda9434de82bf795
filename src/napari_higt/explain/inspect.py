"""Questions a pathologist asks of one node: which node is here, whom does it attend to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_higt.graph.hierarchy import EDGE_SCALE, LEVEL_IDS, LEVELS, HierarchicalGraph

__all__ = ["node_at", "NeighbourAttention", "attention_neighbours", "ranked_nodes"]


def node_at(graph: HierarchicalGraph, x: float, y: float, level: str = "x10") -> int | None:
    """The node of ``level`` whose tile contains level-0 point (x, y).

    Falls back to the nearest tile centre of that level within one tile side, so a click in
    a gap between tiles still selects the obvious neighbour; None when nothing is that close.
    """
    lid = LEVEL_IDS[level]
    idx = np.flatnonzero(graph.level == lid)
    if not len(idx):
        return None
    if level == "thumbnail":
        return int(idx[0])
    size = graph.patch_size[level]
    c = graph.coords[idx].astype(np.float64)
    inside = (c[:, 0] <= x) & (x < c[:, 0] + size) & (c[:, 1] <= y) & (y < c[:, 1] + size)
    if inside.any():
        return int(idx[np.flatnonzero(inside)[0]])
    d = np.hypot(c[:, 0] + size / 2 - x, c[:, 1] + size / 2 - y)
    k = int(np.argmin(d))
    return int(idx[k]) if d[k] <= size else None


@dataclass(frozen=True)
class NeighbourAttention:
    """One incoming or outgoing attention link of a node."""

    node: int
    level: str
    relation: str  # "neighbour", "parent" or "child"
    weight: float


def attention_neighbours(graph: HierarchicalGraph, node: int, edge_weight: np.ndarray,
                         k: int = 5, direction: str = "in") -> list[NeighbourAttention]:
    """The ``k`` strongest attention links of ``node``.

    Parameters
    ----------
    edge_weight : (E,) or (E, heads) array
        Per-edge attention on ``graph.edge_index`` (e.g. RAConv+ layer-1 coefficients);
        heads are averaged.
    direction : {"in", "out"}
        "in": whom the node listens to (edges ending at it); "out": whom it feeds.
    """
    w = np.asarray(edge_weight, dtype=np.float64)
    if w.ndim == 2:
        w = w.mean(axis=1)
    if len(w) != graph.edge_index.shape[1]:
        raise ValueError(f"{len(w)} edge weights for {graph.edge_index.shape[1]} edges")
    src, dst = graph.edge_index
    mine, other = (dst, src) if direction == "in" else (src, dst)
    sel = np.flatnonzero(mine == node)
    order = sel[np.argsort(-w[sel], kind="stable")][:k]
    out = []
    for e in order:
        j = int(other[e])
        if graph.edge_type[e] == EDGE_SCALE:
            relation = "parent" if graph.parent_index[node] == j and j != node else "child"
        else:
            relation = "neighbour"
        out.append(NeighbourAttention(j, LEVELS[graph.level[j]], relation, float(w[e])))
    return out


def ranked_nodes(graph: HierarchicalGraph, score: np.ndarray, level: str = "x10") -> np.ndarray:
    """Node indices of ``level`` from the highest to the lowest ``score`` (NaN last)."""
    idx = np.flatnonzero(graph.level == LEVEL_IDS[level])
    s = np.asarray(score, dtype=np.float64)[idx]
    s = np.where(np.isfinite(s), s, -np.inf)
    return idx[np.argsort(-s, kind="stable")]
