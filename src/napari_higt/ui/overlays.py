"""napari layers showing a slide's hierarchical graph: nodes per level, edges per type.

All layer data are whole numpy arrays (one Points layer per level, one Vectors layer per edge
type), so tens of thousands of nodes stay interactive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_higt.graph.hierarchy import EDGE_SCALE, EDGE_SPATIAL, HierarchicalGraph
from napari_higt.graph.layout import edge_segments, node_centres, node_sizes
from napari_higt.levels import LEVELS
from napari_higt.ui.layers import slide_layer_kwargs

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.slide import Slide

__all__ = ["LEVEL_COLOURS", "add_graph_overlay", "graph_layer_data"]

LEVEL_COLOURS = {"thumbnail": "#9e9e9e", "x5": "#1e88e5", "x10": "#ff9800"}
EDGE_COLOURS = {EDGE_SPATIAL: "#00e5ff", EDGE_SCALE: "#e040fb"}
EDGE_NAMES = {EDGE_SPATIAL: "spatial", EDGE_SCALE: "scale"}


def graph_layer_data(graph: HierarchicalGraph, slide: Slide,
                     tissue_fraction: np.ndarray | None = None) -> list[tuple]:
    """Layer data tuples for the graph of ``slide``: one Points layer per level (thumbnail,
    x5 regions, x10 patches), then one Vectors layer per edge type.

    Regions and patches are drawn as squares the size of their tile (so the squares are the
    patch and region boundaries). The thumbnail node stands for the whole slide: a square of
    its tile would only frame the slide, so it is a circle at the slide centre (where
    `node_centres` places it and its scale edges meet), one region wide. Every layer's
    ``features`` hold node index, level and grid position (and the tissue fraction when given).
    Edges are Vectors from node centre to node centre.
    """
    dims = slide.dimensions
    centres = node_centres(graph, dims)
    sizes = node_sizes(graph, dims)
    out = []
    prefix = slide.slide_id
    for lid, name in enumerate(LEVELS):
        idx = np.flatnonzero(graph.level == lid)
        if not len(idx):
            continue
        feats = {"node": idx, "level": np.full(len(idx), name),
                 "grid_x": graph.grid[idx, 0], "grid_y": graph.grid[idx, 1]}
        if tissue_fraction is not None:
            feats["tissue_fraction"] = np.asarray(tissue_fraction)[idx]
        kwargs = slide_layer_kwargs(slide, 1.0, higt_role=f"graph-{name}")
        kwargs.update(
            name=f"{prefix} {name} nodes", symbol="square", size=sizes[idx],
            face_color="transparent", border_color=LEVEL_COLOURS[name],
            border_width=0.04 if name == "x10" else 0.03, features=feats, opacity=0.9,
            visible=True,
        )
        if name == "thumbnail":
            kwargs.update(symbol="disc", size=float(graph.patch_size["x5"]), border_width=0.06)
        out.append((centres[idx][:, ::-1].copy(), kwargs, "points"))
    for etype in (EDGE_SCALE, EDGE_SPATIAL):
        seg = edge_segments(graph, dims, etype)
        start = seg[:, 0, ::-1]
        vec = np.stack([start, seg[:, 1, ::-1] - start], axis=1)
        kwargs = slide_layer_kwargs(slide, 1.0, higt_role=f"graph-edges-{EDGE_NAMES[etype]}")
        kwargs.update(name=f"{prefix} {EDGE_NAMES[etype]} edges", edge_color=EDGE_COLOURS[etype],
                      edge_width=6.0, vector_style="line", opacity=0.8)
        out.append((vec, kwargs, "vectors"))
    return out


def add_graph_overlay(viewer: napari.viewer.Viewer, graph: HierarchicalGraph, slide: Slide,
                      tissue_fraction: np.ndarray | None = None) -> list:
    """Add (or replace) the graph layers of ``slide`` in ``viewer``; returns the layers."""
    layers = []
    for data, kwargs, kind in graph_layer_data(graph, slide, tissue_fraction):
        name = kwargs["name"]
        if name in viewer.layers:
            viewer.layers.remove(name)
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return layers
