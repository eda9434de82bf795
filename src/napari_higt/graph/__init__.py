"""The hierarchical slide graph (thumbnail, x5 regions, x10 patches) HIGT reads."""

from napari_higt.graph.hierarchy import (
    EDGE_SCALE,
    EDGE_SPATIAL,
    HierarchicalGraph,
    spatial_edges,
)

__all__ = [
    "EDGE_SCALE", "EDGE_SPATIAL", "HierarchicalGraph", "spatial_edges",
]
