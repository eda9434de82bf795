"""Questions a pathologist asks of one node: which node is here, whom does it attend to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_higt.explain.normalise import node_values
from napari_higt.explain.registry import (
    EDGE_SCORE,
    LEVEL_WORDS,
    default_score,
    score_keys,
    score_spec,
)
from napari_higt.graph.hierarchy import EDGE_SCALE, HierarchicalGraph
from napari_higt.levels import LEVEL_IDS, LEVELS

__all__ = ["node_at", "NeighbourAttention", "attention_neighbours", "ranked_nodes",
           "node_summary", "inspected_scores", "node_text", "format_value"]


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


def inspected_scores(diverging: bool = False) -> tuple[str, ...]:
    """The scores the inspector lists for a node (``diverging``: those of its region)."""
    return tuple(k for k in score_keys("inspect") if score_spec(k).diverging == diverging)


def node_summary(result: Any, node: int, k: int = 5) -> dict[str, Any]:
    """What the inspector shows for ``node`` of an inference result.

    ``result`` has ``graph`` (`HierarchicalGraph`) and ``scores`` (name -> array). The
    nodes ``node`` attends to most are ranked by the per-edge attention of the result
    (``edge_attention``) when it has it, else by the importance of the sending node.

    Returns
    -------
    dict with ``level``, ``coords``, ``scores`` (name -> value), ``parent``, ``region_bi``
    (the BI contributions of its region), ``top`` (a list of (node, relation, weight)) and
    ``top_by`` ("attention" or "importance").
    """
    g = result.graph
    scores = {name: float(v[node]) for name, v in result.scores.items()
              if np.ndim(v) == 1 and len(v) == g.num_nodes}
    parent = int(g.parent_index[node])
    region = parent if g.level[node] == LEVEL_IDS["x10"] else node
    region_bi = {name: float(result.scores[name][region])
                 for name in inspected_scores(diverging=True) if name in result.scores}
    edge_w = result.scores.get(EDGE_SCORE.key)
    if edge_w is not None and len(edge_w) == g.edge_index.shape[1]:
        weight, source = edge_w, "attention"
    else:
        imp = np.asarray(result.scores.get(default_score(result.scores), np.zeros(g.num_nodes)))
        weight, source = imp[g.edge_index[0]], "importance"
    top = [(t.node, t.relation, t.weight)
           for t in attention_neighbours(g, node, weight, k=k, direction="in")]
    return {"level": LEVELS[g.level[node]], "coords": tuple(int(c) for c in g.coords[node]),
            "scores": scores, "parent": parent, "region_bi": region_bi, "top": top,
            "top_by": source}


def format_value(name: str, value: float, level: str, raw: bool = False,
                 cls: str | None = None) -> str:
    """One shown value with its scaling: ``87 (percentile within this slide's x10 patches,
    0-100)``, ``+42 (the region's message pushes this patch towards tumour; signed
    percentile ...)``, ``0.0123 (raw value)``; ``n/a (...)`` when the score does not exist
    for the node. ``cls``: the predicted class, named in a signed score's legend."""
    spec = score_spec(name)
    if not np.isfinite(value):
        where = " and ".join(LEVEL_WORDS.get(lv, lv) for lv in spec.levels) or "other nodes"
        return f"n/a (exists for {where} only)" if level not in spec.levels else "n/a"
    if raw:
        text = f"{value:.4g}"
    elif spec.diverging:
        text = f"{value:+.0f}"
    else:
        text = f"{value:.0f}"
    how = spec.normalisation_text(level, raw)
    if spec.diverging and value != 0:  # say which way it pushes, in the registry's words
        side = (spec.high if value > 0 else spec.low).replace(
            "{cls}", str(cls) if cls is not None else "the predicted class")
        how = f"{side}; {how}"
    return f"{text} ({how})"


def node_text(result: Any, node: int, k: int = 5, raw: bool = False) -> list[str]:
    """The inspector's lines for ``node`` of an inference result (plain text).

    The node is named by its graph id -- the ``node`` column of the exported CSV, the
    ``node_index`` of the GeoJSON and the index into ``result.scores[name]``. Each score is
    shown with its plain name and its normalisation (`explain.normalise`, or ``raw``); a
    score that does not exist for the node reads "n/a".
    """
    g = result.graph
    s = node_summary(result, node, k)
    level = s["level"]
    shown = node_values(g.level, result.scores, raw=raw)
    lines = [f"{level} node {int(node)} at x={s['coords'][0]}, y={s['coords'][1]} px"]
    for name in inspected_scores() + inspected_scores(diverging=True):
        if name in shown:
            lines.append(f"{score_spec(name).display_name}: "
                         f"{format_value(name, shown[name][node], level, raw, result.pred)}")
    region = s["parent"] if level == "x10" else None
    if region is not None:
        for name in inspected_scores(diverging=True):
            if name in shown and np.isfinite(shown[name][region]):
                lines.append(f"its x5 region (node {region}), {score_spec(name).display_name}: "
                             f"{format_value(name, shown[name][region], 'x5', raw, result.pred)}")
    by = "RAConv+ attention on the link" if s["top_by"] == "attention" else \
        "importance of the sending node"
    lines.append(f"top {len(s['top'])} nodes it listens to, by {by} (raw value):")
    lines += [f"node {j} ({rel}): {w:.3g}" for j, rel, w in s["top"]]
    return lines
