"""Geometry of a slide graph in level-0 pixels, for overlays and exports."""

from __future__ import annotations

import numpy as np

from napari_higt.graph.hierarchy import EDGE_SCALE, EDGE_SPATIAL, HierarchicalGraph
from napari_higt.levels import LEVEL_IDS, LEVELS, PATCH, REGION, THUMBNAIL

__all__ = ["node_sizes", "node_centres", "edge_segments", "level_names", "node_tissue_fraction"]


def node_sizes(graph: HierarchicalGraph, slide_dimensions: tuple[int, int]) -> np.ndarray:
    """(N,) tile side of each node in level-0 px; the thumbnail spans the whole slide."""
    sizes = np.empty(graph.num_nodes, np.float64)
    for lid, name in enumerate(LEVELS):
        m = graph.level == lid
        sizes[m] = max(slide_dimensions) if name == THUMBNAIL else graph.patch_size[name]
    return sizes


def node_centres(graph: HierarchicalGraph, slide_dimensions: tuple[int, int]) -> np.ndarray:
    """(N, 2) float (x, y) tile centres in level-0 px; the thumbnail sits at the slide centre."""
    sizes = node_sizes(graph, slide_dimensions)
    centres = graph.coords.astype(np.float64) + sizes[:, None] / 2
    thumb = graph.level == 0
    centres[thumb] = np.asarray(slide_dimensions, dtype=np.float64) / 2
    return centres


def edge_segments(graph: HierarchicalGraph, slide_dimensions: tuple[int, int],
                  edge_type: int = EDGE_SPATIAL, include_thumbnail: bool = False) -> np.ndarray:
    """(E', 2, 2) start and end (x, y) of each undirected edge of one type.

    Each edge is drawn once (the graph stores both directions). Scale edges to the thumbnail
    are left out unless ``include_thumbnail``: they all converge on the slide centre.
    """
    if edge_type not in (EDGE_SPATIAL, EDGE_SCALE):
        raise ValueError(f"unknown edge type {edge_type}")
    src, dst = graph.edge_index
    keep = (graph.edge_type == edge_type) & (src < dst)
    if not include_thumbnail:
        keep &= (graph.level[src] != 0) & (graph.level[dst] != 0)
    centres = node_centres(graph, slide_dimensions)
    return np.stack([centres[src[keep]], centres[dst[keep]]], axis=1)


def level_names(graph: HierarchicalGraph) -> np.ndarray:
    """(N,) level name of each node."""
    return np.asarray(LEVELS)[graph.level]


def node_tissue_fraction(slide, graph, mask=None) -> np.ndarray:
    """(N,) tissue fraction of every node's tile, on the same mask the pipeline uses
    (``mask``, a `TissueMask`, when the caller has it already; ``slide`` is then unused)."""
    from napari_higt.slide.tissue import mask_size_for, tissue_mask

    if mask is None:
        mask = tissue_mask(slide,
                           max_size=mask_size_for(slide.dimensions, graph.patch_size[PATCH]))
    out = np.empty(graph.num_nodes, np.float64)
    out[graph.level == LEVEL_IDS[THUMBNAIL]] = mask.fraction
    for lid, name in ((LEVEL_IDS[REGION], REGION), (LEVEL_IDS[PATCH], PATCH)):
        m = graph.level == lid
        if m.any():
            out[m] = mask.region_fraction(graph.coords[m], graph.patch_size[name])
    return out
