"""The hierarchical slide graph (thumbnail, x5 regions, x10 patches) HIGT reads."""

from napari_higt.graph.hierarchy import (
    EDGE_SCALE,
    EDGE_SPATIAL,
    LEVEL_IDS,
    LEVELS,
    HierarchicalGraph,
    spatial_edges,
)

__all__ = [
    "EDGE_SCALE", "EDGE_SPATIAL", "LEVELS", "LEVEL_IDS", "HierarchicalGraph", "spatial_edges",
]
