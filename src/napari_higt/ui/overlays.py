"""napari layers showing a slide's hierarchical graph without hiding its tissue.

Three layers per slide, whatever the graph's size:

* **patch grid**: the x10 tiles that are nodes, as one raster at one pixel per tile (a faint
  light/dark checkerboard, so each tile's extent shows and the tissue stays readable). A
  raster costs one texture however many patches there are; tens of thousands of square
  markers cost a fill of every pixel they cover at every frame.
* **graph nodes**: one dot per node at its tile's centre (x10 patches, x5 regions, a star
  for the whole-slide node), a fixed fraction of the tile in data units, clamped on screen
  by napari's ``canvas_size_limits`` so a dot never covers its patch nor shrinks out of
  sight. The layer holds only the dots it draws (napari's cost per frame follows the
  points a layer holds): those near the view, of the levels switched on.
* **graph edges**: spatial and scale edges as one Vectors layer whose width stays
  `EDGE_PX` screen pixels at every zoom (`napari_higt.ui.screen`); an edge type is hidden
  by making its colour transparent.

Dots and edges are drawn from the zoom where an x10 tile spans `DETAIL_PX` screen pixels
(`napari_higt.ui.screen.show_from_zoom`): zoomed out over tens of thousands of patches they
would be a haze over the tissue costing every frame, and the grid already shows each node.

`graph_layer_data` is plain numpy (it runs in the Graph widget's worker); adding the layers
is all the GUI thread does, one per event-loop turn (`iter_graph_overlay`). While a score map
of the slide is shown the graph is dimmed (`dim_graph`), so the colours read as the score's.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from napari_higt.explain.colours import hex_rgb
from napari_higt.explain.rasters import node_raster
from napari_higt.graph.hierarchy import EDGE_SCALE, EDGE_SPATIAL, HierarchicalGraph
from napari_higt.graph.layout import edge_segments, node_centres
from napari_higt.levels import LEVEL_IDS, LEVELS, PATCH, REGION, THUMBNAIL
from napari_higt.ui.layers import SLIDE_KEY, camera, slide_layer_kwargs
from napari_higt.ui.screen import culled_mask

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.slide import Slide

__all__ = ["LEVEL_COLOURS", "EDGE_COLOURS", "GRAPH_PARTS", "graph_layer_data",
           "add_graph_overlay", "iter_graph_overlay", "graph_layers", "graph_layer",
           "heatmap_shown", "dim_graph", "set_graph_part", "part_visible", "legend_html"]

#: Colours away from the stains' purple and pink (and from the heatmaps' teal-yellow).
LEVEL_COLOURS = {THUMBNAIL: "#ffffff", REGION: "#76ff03", PATCH: "#ffab00"}
EDGE_COLOURS = {EDGE_SPATIAL: "#18ffff", EDGE_SCALE: "#eeff41"}
EDGE_NAMES = {EDGE_SPATIAL: "spatial", EDGE_SCALE: "scale"}
#: Line width of the edges in screen pixels.
EDGE_PX = 1.5
#: Dot diameter as a share of its tile (the whole-slide star: of a region), and the bounds
#: of every dot in screen pixels.
DOT_FRACTION = {THUMBNAIL: 0.5, REGION: 0.12, PATCH: 0.18}
DOT_PX = (3, 10)
#: Dot border, as a share of its diameter.
DOT_BORDER = 0.12
#: Dots and edges are drawn while an x10 tile spans at least this many screen pixels.
DETAIL_PX = 24
#: Opacity of each layer, and the factor applied while a score map is shown.
OPACITY = {"grid": 1.0, "nodes": 0.9, "edges": 0.7}
DIMMED = 0.3
#: The parts a user can switch (the Graph widget's check boxes): part -> label.
GRAPH_PARTS = {
    "grid": "patch grid",
    PATCH: "x10 patches",
    REGION: "x5 regions",
    THUMBNAIL: "whole-slide node",
    "spatial": "spatial edges",
    "scale": "scale edges",
}
#: Light and dark tint of the checkerboard (RGBA in [0, 1]).
GRID_TINTS = ((1.0, 1.0, 1.0, 0.12), (0.0, 0.0, 0.0, 0.10))
ROLE_KEY = "higt_role"
BASE_OPACITY_KEY = "higt_base_opacity"
ROLES = {"grid": "graph-grid", "nodes": "graph-nodes", "edges": "graph-edges"}
#: ``layer.metadata`` keys: every edge (vectors, type, colours as shown, colours in full) and
#: the node levels switched on; which items are near the view is `ui.screen.culled_mask`.
_EDGES_KEY = "higt_edges"
_LEVELS_KEY = "higt_levels_shown"
#: ``layer.metadata`` key of every node's position and attributes (the layer holds those
#: near the view).
_NODES_KEY = "higt_nodes"
_NODE_ATTRS = ("size", "face_color", "symbol", "features")


def _name(part: str, slide: Slide) -> str:
    # What the layer is first, then whose: napari's layer list elides the middle of names.
    return f"{part} · {slide.slide_id}"


def _grid_layer(graph: HierarchicalGraph, slide: Slide) -> tuple | None:
    m = graph.level == LEVEL_IDS[PATCH]
    if not m.any():
        return None
    size = float(graph.patch_size[PATCH])
    parity = (graph.grid[m, 0] + graph.grid[m, 1]) % 2
    raster = node_raster(graph.coords[m], size, parity.astype(float), slide.dimensions, 1)
    kwargs = slide_layer_kwargs(slide, raster.downsample, higt_role=ROLES["grid"],
                                higt_base_opacity=OPACITY["grid"])
    kwargs.update(name=_name("patch grid", slide), colormap=("graph-grid", GRID_TINTS),
                  contrast_limits=(0.0, 1.0), interpolation2d="nearest",
                  blending="translucent", opacity=OPACITY["grid"])
    return raster.values, kwargs, "image"


def _nodes_layer(graph: HierarchicalGraph, slide: Slide,
                 tissue_fraction: np.ndarray | None) -> tuple:
    # Coarse to fine, then the whole-slide star on top.
    idx = np.concatenate([np.flatnonzero(graph.level == LEVEL_IDS[n])
                          for n in (REGION, PATCH, THUMBNAIL)])
    names = np.asarray(LEVELS)[graph.level[idx]]
    import pandas as pd  # the table here, off the GUI thread (napari would make it there)

    feats = {"node": idx, "level": names, "grid_x": graph.grid[idx, 0],
             "grid_y": graph.grid[idx, 1]}
    if tissue_fraction is not None:
        feats["tissue_fraction"] = np.asarray(tissue_fraction)[idx]
    tile = np.array([graph.patch_size[PATCH if n == PATCH else REGION] for n in names], float)
    size = tile * np.array([DOT_FRACTION[n] for n in names])
    rgba = {lv: (*hex_rgb(c), 1.0) for lv, c in LEVEL_COLOURS.items()}
    kwargs = slide_layer_kwargs(slide, 1.0, higt_role=ROLES["nodes"],
                                higt_base_opacity=OPACITY["nodes"])
    kwargs.update(name=_name("graph nodes", slide), size=size, canvas_size_limits=DOT_PX,
                  face_color=np.array([rgba[n] for n in names], float).reshape(-1, 4),
                  border_color="#000000", border_width=DOT_BORDER,
                  border_width_is_relative=True,
                  symbol=np.where(names == THUMBNAIL, "star", "disc"),
                  features=pd.DataFrame(feats), opacity=OPACITY["nodes"])
    centres = node_centres(graph, slide.dimensions)
    return centres[idx][:, ::-1].copy(), kwargs, "points"


def _edges_layer(graph: HierarchicalGraph, slide: Slide) -> tuple:
    # Scale edges after spatial ones, so drawn above them: from a region's centre they run
    # along its patches' diagonals, and would vanish under them.
    parts, types = [], []
    for etype in (EDGE_SPATIAL, EDGE_SCALE):
        seg = edge_segments(graph, slide.dimensions, etype)
        start = seg[:, 0, ::-1]
        parts.append(np.stack([start, seg[:, 1, ::-1] - start], axis=1))
        types.append(np.full(len(seg), EDGE_NAMES[etype]))
    vec = np.concatenate(parts).reshape(-1, 2, 2)
    kind = np.concatenate(types)
    colours = np.array([(*hex_rgb(EDGE_COLOURS[EDGE_SPATIAL if k == "spatial" else EDGE_SCALE]),
                         1.0) for k in ("spatial", "scale")])
    kwargs = slide_layer_kwargs(slide, 1.0, higt_role=ROLES["edges"],
                                higt_base_opacity=OPACITY["edges"])
    kwargs.update(name=_name("graph edges", slide), vector_style="line", edge_width=1.0,
                  edge_color=colours[(kind == "scale").astype(int)],
                  features={"type": kind}, opacity=OPACITY["edges"])
    return vec, kwargs, "vectors"


def graph_layer_data(graph: HierarchicalGraph, slide: Slide,
                     tissue_fraction: np.ndarray | None = None) -> list[tuple]:
    """(data, kwargs, kind) of the graph layers of ``slide``, bottom to top.

    The patch grid (an image), the edges (vectors from node centre to node centre, each
    undirected edge once; ``features["type"]`` is "spatial" or "scale") and the nodes
    (points at tile centres in (row, col) order; ``features`` hold node index, level, grid
    position and, when given, the tissue fraction). Pure numpy: safe off the GUI thread.
    """
    grid = _grid_layer(graph, slide)
    return ([grid] if grid is not None else []) + [_edges_layer(graph, slide),
                                                  _nodes_layer(graph, slide, tissue_fraction)]


def _colormap(spec):
    """A napari colormap for a ``(name, rgba stops)`` pair of this module."""
    from napari.utils.colormaps import Colormap

    name, colours = spec
    return Colormap(colors=np.asarray(colours, float), name=f"higt-{name}",
                    interpolation="zero" if len(colours) == 2 else "linear")


def add_graph_overlay(viewer: napari.viewer.Viewer, graph_or_data, slide: Slide,
                      tissue_fraction: np.ndarray | None = None,
                      shown: dict[str, bool] | None = None) -> list:
    """Add (or replace) the graph layers of ``slide``; returns them, bottom to top.

    ``graph_or_data`` is a `HierarchicalGraph` or what `graph_layer_data` made of one (the
    Graph widget makes it in its worker, so that here only layers are added); ``shown``
    maps parts (`GRAPH_PARTS`) to their visibility (default: all shown).
    """
    return list(iter_graph_overlay(viewer, graph_or_data, slide, tissue_fraction, shown))


def iter_graph_overlay(viewer: napari.viewer.Viewer, graph_or_data, slide: Slide,
                       tissue_fraction: np.ndarray | None = None,
                       shown: dict[str, bool] | None = None):
    """`add_graph_overlay` one layer at a time: yields each layer once it is added."""
    from napari_higt.ui.screen import cull_to_view, keep_screen_width, near_view, show_from_zoom

    data = (graph_layer_data(graph_or_data, slide, tissue_fraction)
            if isinstance(graph_or_data, HierarchicalGraph) else graph_or_data)
    old = graph_layers(viewer, str(slide.path))
    if old:
        with viewer.layers.batched_update():  # one garbage collection, not one per layer
            for layer in old:
                viewer.layers.remove(layer)
    dimmed = heatmap_shown(viewer, str(slide.path))
    shown = {part: True for part in GRAPH_PARTS} | dict(shown or {})
    tile = float(values_tile(data))
    for values, kwargs, kind in data:
        kwargs = dict(kwargs)
        if isinstance(kwargs.get("colormap"), tuple):
            kwargs["colormap"] = _colormap(kwargs["colormap"])
        # Visibility and dimming go in with the layer: each later change redraws it.
        if kwargs["metadata"][ROLE_KEY] == ROLES["grid"]:
            kwargs["visible"] = shown["grid"]
        if kind == "vectors":  # the width in screen pixels from the start: no rebuild
            kwargs["edge_width"] = EDGE_PX / (camera(viewer).zoom * kwargs["scale"][-1])
            kwargs["edge_color"] = _edge_colours(kwargs["features"]["type"], shown,
                                                 kwargs["edge_color"])
        if dimmed:
            kwargs["opacity"] = kwargs["opacity"] * DIMMED
        # What the graph widget reads back goes in with the layer: it looks on insertion.
        kwargs["metadata"] = meta = dict(kwargs["metadata"])
        near = positions = None
        if kind in ("points", "vectors"):
            # Dots and edges are drawn only zoomed in, and then mostly off screen: the
            # layer is made with those it draws now (none zoomed out), the rest follow.
            placed = SimpleNamespace(scale=kwargs["scale"], translate=kwargs["translate"])
            positions = _positions(values, kind)
            near = near_view(viewer, placed, positions, tile, DETAIL_PX)
        if kind == "vectors":
            full = np.asarray(kwargs["edge_color"], float)
            kinds = np.asarray(kwargs["features"]["type"])
            meta[_EDGES_KEY] = {"data": np.asarray(values), "colours": full.copy(),
                                "type": kinds, "full_alpha": full[:, 3].copy()}
            values, kwargs["features"] = values[near], {"type": kinds[near]}
            # napari refuses an empty colour array: none drawn yet, any colour will do
            kwargs["edge_color"] = full[near] if near.any() else EDGE_COLOURS[EDGE_SPATIAL]
        if kind == "points":
            full = {"data": np.asarray(values)} | {k: kwargs[k] for k in _NODE_ATTRS}
            meta[_NODES_KEY] = full
            meta[_LEVELS_KEY] = np.isin(np.asarray(full["features"]["level"]),
                                        [lv for lv in LEVELS if shown.get(lv, True)])
            sel = meta[_LEVELS_KEY] & near
            values = full["data"][sel]
            kwargs.update(_node_subset(full, sel))
        layer = getattr(viewer, f"add_{kind}")(values, **kwargs)
        if kind == "vectors":
            keep_screen_width(viewer, layer, EDGE_PX)
        if kind in ("points", "vectors"):  # a haze below DETAIL_PX: the grid shows the nodes
            show_from_zoom(viewer, layer, tile, DETAIL_PX)
            show = _show_edges(layer) if kind == "vectors" else _show_nodes(layer)
            cull_to_view(viewer, layer, positions, show, shown=near)
        yield layer


def _positions(values: np.ndarray, kind: str) -> np.ndarray:
    """(row, col) of each item: a node's centre, an edge's midpoint."""
    values = np.asarray(values)
    if kind == "points":
        return values[:, -2:]
    return values[:, 0, -2:] + values[:, 1, -2:] / 2


def _node_subset(full: dict, sel: np.ndarray) -> dict:
    """The per-node attributes of the nodes ``sel`` picks (napari keyword arguments)."""
    out = {k: (full[k].iloc[np.flatnonzero(sel)].reset_index(drop=True) if k == "features"
               else np.asarray(full[k])[sel]) for k in _NODE_ATTRS}
    if not sel.any():  # napari refuses an empty colour array: none drawn, any will do
        out["face_color"] = LEVEL_COLOURS[PATCH]
    return out


def _show_nodes(layer):
    def show(mask: np.ndarray) -> None:
        # The layer holds only the dots it draws: napari's cost per frame follows the
        # points a layer holds, not those its `shown` mask lets through.
        full = layer.metadata[_NODES_KEY]
        sel = layer.metadata[_LEVELS_KEY] & mask
        with layer.events.blocker_all():  # one refresh for data and attributes together
            layer.selected_data = set()
            layer.data = full["data"][sel]
            for key, value in _node_subset(full, sel).items():
                setattr(layer, key, value)
            layer.border_width = DOT_BORDER
        layer.refresh()
    return show


def _show_edges(layer):
    def show(mask: np.ndarray) -> None:
        full = layer.metadata[_EDGES_KEY]
        # One refresh: the data, its features and colours change together.
        with layer.events.blocker_all():
            layer.data = full["data"][mask]
            layer.features = {"type": full["type"][mask]}
        if mask.any():  # napari refuses an empty colour array
            layer.edge_color = full["colours"][mask]
        else:
            layer.refresh()
    return show


def values_tile(data: list[tuple]) -> float:
    """Side of an x10 tile in level-0 px, from the layer data (the grid's pixel size)."""
    return next((float(kwargs["metadata"]["higt_px_scale"]) for _, kwargs, kind in data
                 if kind == "image"), 0.0)


def _edge_colours(kind, shown: dict[str, bool], colours) -> np.ndarray:
    out = np.array(colours, float, copy=True)
    for part in ("spatial", "scale"):
        if not shown.get(part, True):
            out[np.asarray(kind) == part, 3] = 0.0
    return out


def graph_layers(viewer: napari.viewer.Viewer, slide_path: str) -> list:
    """The graph layers of the slide at ``slide_path``."""
    return [ly for ly in viewer.layers if ly.metadata.get(SLIDE_KEY) == slide_path
            and str(ly.metadata.get(ROLE_KEY, "")).startswith("graph-")]


def graph_layer(viewer: napari.viewer.Viewer, slide_path: str, what: str):
    """The slide's ``what`` ("grid", "nodes" or "edges") graph layer, or None."""
    return next((ly for ly in graph_layers(viewer, slide_path)
                 if ly.metadata.get(ROLE_KEY) == ROLES[what]), None)


def heatmap_shown(viewer: napari.viewer.Viewer, slide_path: str) -> bool:
    """Whether a score map of the slide at ``slide_path`` is visible."""
    return any(ly.visible for ly in viewer.layers if ly.metadata.get(SLIDE_KEY) == slide_path
               and ly.metadata.get(ROLE_KEY) == "score")


def dim_graph(viewer: napari.viewer.Viewer, slide_path: str) -> bool:
    """Dim the slide's graph while one of its score maps is visible; returns whether it is."""
    shown = heatmap_shown(viewer, slide_path)
    for layer in graph_layers(viewer, slide_path):
        base = float(layer.metadata.get(BASE_OPACITY_KEY, layer.opacity))
        opacity = base * (DIMMED if shown else 1.0)
        if abs(layer.opacity - opacity) > 1e-6:
            layer.opacity = opacity
    return shown


def set_graph_part(viewer: napari.viewer.Viewer, slide_path: str, part: str,
                   visible: bool) -> bool:
    """Show or hide one part (a key of `GRAPH_PARTS`) of the slide's graph; False when the
    slide has no graph layer for it."""
    if part == "grid":
        layer = graph_layer(viewer, slide_path, "grid")
        if layer is not None and layer.visible != visible:  # each assignment redraws
            layer.visible = visible
    elif part in LEVELS:
        layer = graph_layer(viewer, slide_path, "nodes")
        if layer is not None:
            level = _node_levels(layer)
            layer.metadata[_LEVELS_KEY] = np.where(level == part, visible,
                                                   layer.metadata[_LEVELS_KEY])
            near = culled_mask(layer)
            _show_nodes(layer)(np.ones(len(level), bool) if near is None else near)
    else:
        layer = graph_layer(viewer, slide_path, "edges")
        if layer is not None:
            full = layer.metadata[_EDGES_KEY]
            sel = full["type"] == part
            full["colours"][sel, 3] = full["full_alpha"][sel] if visible else 0.0
            near = culled_mask(layer)
            if near is None:
                near = np.ones(len(sel), bool)
            if near.any():
                layer.edge_color = full["colours"][near]
    return layer is not None


def _node_levels(layer) -> np.ndarray:
    """The level of every node of a nodes layer (drawn or not)."""
    return np.asarray(layer.metadata[_NODES_KEY]["features"]["level"])


def part_visible(viewer: napari.viewer.Viewer, slide_path: str) -> dict[str, bool]:
    """Which parts of the slide's graph are shown now (empty without a graph)."""
    out: dict[str, bool] = {}
    grid = graph_layer(viewer, slide_path, "grid")
    if grid is not None:
        out["grid"] = grid.visible
    nodes = graph_layer(viewer, slide_path, "nodes")
    if nodes is not None:
        level = _node_levels(nodes)
        on = nodes.metadata[_LEVELS_KEY]
        for lv in LEVELS:
            out[lv] = bool(np.any(on[level == lv])) if np.any(level == lv) else True
    edges = graph_layer(viewer, slide_path, "edges")
    if edges is not None:
        full = edges.metadata[_EDGES_KEY]
        for part in ("spatial", "scale"):
            sel = full["type"] == part
            out[part] = bool(np.any(full["colours"][sel, 3] > 0)) if sel.any() else True
    return out


def legend_html() -> str:
    """The overlay's legend: a coloured mark and a name per part."""
    rows = [("&#9641;", "#bdbdbd", "patch grid: one square per x10 patch (a node)"),
            ("&#9679;", LEVEL_COLOURS[PATCH], "x10 patch node (512 µm)"),
            ("&#9679;", LEVEL_COLOURS[REGION], "x5 region node (1024 µm)"),
            ("&#9733;", LEVEL_COLOURS[THUMBNAIL], "whole-slide node (thumbnail)"),
            ("&#9472;", EDGE_COLOURS[EDGE_SPATIAL], "spatial edge: 8 neighbours"),
            ("&#9472;", EDGE_COLOURS[EDGE_SCALE], "scale edge: region to its patches")]
    return "<br>".join([f"<span style='color:{c}; font-size:14px'>{m}</span> {t}"
                        for m, c, t in rows]
                       + [f"<i>dots and edges show once a patch is {DETAIL_PX} px wide on "
                          "screen (zoom in)</i>"])
