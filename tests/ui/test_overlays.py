"""The hierarchical graph drawn over a real slide: layer data, placement, screen-pixel widths."""

import numpy as np
import pytest

from napari_higt.graph.layout import edge_segments, node_centres
from napari_higt.slide import Slide
from napari_higt.ui.overlays import add_graph_overlay, graph_layer_data, set_graph_part


def _part(layer):
    return layer.name.split(" · ")[0]


def test_layer_data_match_graph(tcga_path, tcga_graph):
    graph, tiling = tcga_graph
    with Slide(tcga_path, mpp=1.0) as s:
        data = graph_layer_data(graph, s)
    kinds = [(kw["name"].split(" · ")[0], kind) for _, kw, kind in data]
    assert kinds == [("patch grid", "image"), ("graph edges", "vectors"),
                     ("graph nodes", "points")]
    counts = graph.counts()
    # The patch grid: one raster pixel per x10 tile, a checkerboard (0/1) where nodes are.
    grid, kw, _ = data[0]
    size = tiling.levels["x10"].size0
    assert np.isfinite(grid).sum() == counts["x10"]
    np.testing.assert_allclose(kw["scale"], (size, size))
    gx, gy = (tiling.levels["x10"].coords // size).T.astype(int)
    np.testing.assert_array_equal(grid[gy, gx], (gx + gy) % 2)
    # Nodes: x5, x10 then the whole-slide star, at tile centres in (row, col) order.
    pts, kw, _ = data[2]
    assert len(pts) == graph.num_nodes
    levels = list(kw["features"]["level"])
    assert levels == ["x5"] * counts["x5"] + ["x10"] * counts["x10"] + ["thumbnail"]
    np.testing.assert_allclose(pts[-1], [3567 / 2, 4443 / 2])
    assert kw["symbol"][-1] == "star" and kw["canvas_size_limits"] == (3, 10)
    first10 = levels.index("x10")
    np.testing.assert_allclose(pts[first10], tiling.levels["x10"].coords[0][::-1] + size / 2)
    # A dot is a fraction of its tile: it never hides the patch it marks.
    assert kw["size"][first10] < 0.25 * size
    # Edges: each undirected spatial and scale edge once, from node centre to node centre.
    vec, kw, _ = data[1]
    undirected = graph.edge_index[0] < graph.edge_index[1]
    no_thumb = (graph.level[graph.edge_index[0]] != 0) & (graph.level[graph.edge_index[1]] != 0)
    n_spatial = int(((graph.edge_type == 0) & undirected).sum())
    n_scale = int(((graph.edge_type == 1) & undirected & no_thumb).sum())
    types = np.asarray(kw["features"]["type"])
    assert (types == "spatial").sum() == n_spatial > 0 and (types == "scale").sum() == n_scale
    seg = edge_segments(graph, (4443, 3567))
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    # 8-neighbours are one or sqrt(2) tile sides apart: x10 tiles, or x5 tiles (2x larger).
    assert set(np.round(length / size, 3)) == {1.0, 1.414, 2.0, 2.828}


def test_overlay_in_viewer_in_um(make_napari_viewer, tcga_path, tcga_graph):
    graph, _ = tcga_graph
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(tcga_path), plugin="napari-higt")
    from napari_higt.ui.layers import slide_of_layer

    slide = slide_of_layer(image)
    slide.set_mpp(1.0)
    layers = add_graph_overlay(viewer, graph, slide)
    assert [_part(ly) for ly in layers] == ["patch grid", "graph edges", "graph nodes"]
    nodes = layers[2]
    np.testing.assert_allclose(nodes.scale, (1.0, 1.0))
    assert list(nodes.features["level"]).count("thumbnail") == 1
    # Same world position as the image: a patch centre lands on the slide's tissue.
    i = list(nodes.features["level"]).index("x10")
    c = node_centres(graph, slide.dimensions)[nodes.features["node"][i]]
    np.testing.assert_allclose(nodes.data_to_world(nodes.data[i]), c[::-1] * 1.0)
    # Toggles: a level by leaving its dots out of the layer, an edge type by its colour.
    before = nodes.features["level"].value_counts()
    assert before["x5"] > 0 and before["x10"] > 0
    set_graph_part(viewer, str(slide.path), "x5", False)
    after = nodes.features["level"].value_counts()
    assert "x5" not in after and after["x10"] == before["x10"]
    assert len(nodes.data) == len(nodes.features) == len(nodes.size) == after.sum()
    set_graph_part(viewer, str(slide.path), "scale", False)
    kind = layers[1].features["type"].to_numpy()
    alpha = np.asarray(layers[1].edge_color)[:, 3]
    assert (alpha[kind == "scale"] == 0).all() and (alpha[kind == "spatial"] > 0).all()
    # Re-adding replaces instead of duplicating.
    add_graph_overlay(viewer, graph, slide)
    assert len(viewer.layers) == 1 + len(layers)


def _line_thickness(img: np.ndarray) -> float:
    """Median run length, down the columns, of the bright pixels of horizontal lines."""
    on = img[..., :3].max(axis=2) > 100
    runs = []
    for col in on.T[:: max(1, on.shape[1] // 60)]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], col.astype(int), [0]])))
        runs += list(edges[1::2] - edges[::2])
    return float(np.median(runs)) if runs else 0.0


def test_edge_width_is_in_screen_pixels(make_napari_viewer, qtbot, tcga_path):
    """At two zoom levels the graph's lines are as many screen pixels wide; a napari
    Vectors layer of the same lines left alone (data units) is not."""
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.ui.layers import camera, slide_of_layer

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 900)
    (image,) = viewer.open(str(tcga_path), plugin="napari-higt")
    slide = slide_of_layer(image)
    slide.set_mpp(1.0)
    # One row of patches: its spatial edges are horizontal lines.
    c10 = np.array([[x * 512, 1024] for x in range(4)])
    graph = HierarchicalGraph.from_arrays({"x10": c10}, {"x10": np.ones((4, 2), np.float32)},
                                          patch_size={"x10": 512, "x5": 1024})
    layers = add_graph_overlay(viewer, graph, slide)
    edges = layers[1]
    for part in ("grid", "x10", "x5", "thumbnail", "scale"):
        set_graph_part(viewer, str(slide.path), part, False)
    image.visible = False
    spatial = edges.features["type"].to_numpy() == "spatial"
    viewer.reset_view()
    fixed = viewer.add_vectors(edges.data[spatial], vector_style="line", edge_color="white",
                               edge_width=2.0 / camera(viewer).zoom, visible=False)
    widths = {}
    for zoom in (1.0, 3.0):
        viewer.reset_view()
        camera(viewer).center = (1024 + 256, 1024)
        camera(viewer).zoom = camera(viewer).zoom * zoom
        for layer, key in ((edges, "graph"), (fixed, "data units")):
            edges.visible, fixed.visible = layer is edges, layer is fixed
            qtbot.wait(100)
            widths[(key, zoom)] = _line_thickness(viewer.screenshot(canvas_only=True,
                                                                    flash=False))
    assert widths[("graph", 1.0)] >= 1
    assert abs(widths[("graph", 3.0)] - widths[("graph", 1.0)]) <= 1, widths
    assert widths[("data units", 3.0)] >= widths[("data units", 1.0)] + 2, widths


def test_rerun_updates_score_layers_in_place(make_napari_viewer, tcga_path, tcga_graph):
    """A second inference over the same slide refreshes its heatmaps without removing them,
    keeping what the user set (visibility, opacity)."""
    from napari_higt.explain.maps import score_maps
    from napari_higt.ui.heatmaps import add_score_maps

    graph, _ = tcga_graph
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    with Slide(tcga_path, mpp=0.5) as slide:
        dims = slide.dimensions
        first = add_score_maps(viewer, score_maps(
            graph, {"node_importance": rng.random(graph.num_nodes)}, dims), slide)
        first[1].visible, first[0].opacity = True, 0.9
        removed = []
        viewer.layers.events.removed.connect(lambda e: removed.append(e.value))
        imp = rng.random(graph.num_nodes)
        again = add_score_maps(viewer, score_maps(graph, {"node_importance": imp}, dims), slide)
    assert [id(l) for l in again] == [id(l) for l in first] and not removed
    assert again[1].visible and again[0].opacity == 0.9
    expect = score_maps(graph, {"node_importance": imp}, dims)[1].raster.values
    np.testing.assert_array_equal(again[1].data, expect)


@pytest.fixture
def cmu_viewer(make_napari_viewer, cmu1_path):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 900)
    (image,) = viewer.open(str(cmu1_path), plugin="napari-higt")
    return viewer, image


def test_heatmap_reads_over_tissue(cmu_viewer, qtbot):
    """On real H&E: the highest-score tile's colour is far from its tissue's, the lowest
    keeps its tissue visible, and both show on the canvas as the figure paints them."""
    from napari_higt.explain.colours import score_rgba
    from napari_higt.explain.maps import score_maps
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.ui.heatmaps import add_score_maps
    from napari_higt.ui.layers import camera, slide_of_layer

    viewer, image = cmu_viewer
    slide = slide_of_layer(image)
    # A 3 x 3 block of 400 px tiles over the tissue of CMU-1, scores rising across it.
    tile = 400
    c10 = np.array([[(2 + x) * tile, (4 + y) * tile] for y in range(3) for x in range(3)])
    graph = HierarchicalGraph.from_arrays({"x10": c10}, {"x10": np.ones((9, 2), np.float32)},
                                          patch_size={"x10": tile, "x5": 2 * tile})
    scores = np.full(graph.num_nodes, np.nan)
    patches = np.flatnonzero(graph.level == 2)
    scores[patches] = np.linspace(0.0, 1.0, len(patches))
    maps = [m for m in score_maps(graph, {"node_importance": scores}, slide.dimensions)
            if m.level == "x10"]
    (layer,) = add_score_maps(viewer, maps, slide)
    ux = slide.mpp[0]
    colour = {}
    for which, node in (("high", patches[-1]), ("low", patches[0])):
        x, y = graph.coords[node] + tile / 2
        viewer.reset_view()
        camera(viewer).center = (y * ux, x * ux)
        camera(viewer).zoom = 3 * camera(viewer).zoom
        for shown in (True, False):
            layer.visible = shown
            qtbot.wait(100)
            img = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
            h, w = img.shape[:2]
            colour[(which, shown)] = img[h // 2 - 20:h // 2 + 20, w // 2 - 20:w // 2 + 20]
    dist = {k: float(np.linalg.norm(colour[(k, True)] - colour[(k, False)], axis=-1).mean())
            for k in ("high", "low")}
    assert dist["high"] > 80, dist  # clearly coloured
    assert dist["low"] < 20, dist  # the tissue shows through
    # The canvas paints what the figure's RGBA says: the high tile's expected blend.
    rgba = score_rgba(np.array([100.0]), maps[0].clim, maps[0].colormap)[0] / 255.0
    tissue = colour[("high", False)].mean((0, 1))
    expect = rgba[3] * 255 * rgba[:3] + (1 - rgba[3]) * tissue
    np.testing.assert_allclose(colour[("high", True)].mean((0, 1)), expect, atol=25)


def test_dots_and_edges_are_kept_near_the_view(make_napari_viewer, tcga_path):
    """Zoomed in on a large graph, only the dots and edges near the view are drawn; a pan
    brings in those of the new place; switching a part off holds across the re-selection."""
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.ui.layers import camera, slide_of_layer
    from napari_higt.ui.overlays import DETAIL_PX, part_visible
    from napari_higt.ui.screen import view_rect

    viewer = make_napari_viewer()
    (image,) = viewer.open(str(tcga_path), plugin="napari-higt")
    slide = slide_of_layer(image)
    slide.set_mpp(1.0)
    gy, gx = np.mgrid[0:40, 0:40]
    c10 = np.column_stack([gx.ravel(), gy.ravel()]) * 512
    graph = HierarchicalGraph.from_arrays({"x10": c10}, {"x10": np.ones((len(c10), 2), np.float32)},
                                          patch_size={"x10": 512, "x5": 1024})
    every_edge = graph_layer_data(graph, slide)[1][0]
    n_edges = len(every_edge)
    cam = camera(viewer)
    cam.zoom = 0.01  # zoomed far out: made with no dot or edge to draw
    _, edges, nodes = add_graph_overlay(viewer, graph, slide)
    assert len(edges.data) == 0 and len(nodes.data) == 0 and not edges.visible
    every_node = graph_layer_data(graph, slide)[2]
    every_pos, every_level = every_node[0], every_node[1]["features"]["level"].to_numpy()

    def in_view(points, layer):
        r0, c0, r1, c1 = view_rect(viewer, layer)
        return ((points[:, 0] >= r0) & (points[:, 0] <= r1)
                & (points[:, 1] >= c0) & (points[:, 1] <= c1))

    every_mid = every_edge[:, 0] + every_edge[:, 1] / 2
    drawn = []
    for centre in ((2000.0, 2000.0), (18000.0, 15000.0)):
        cam.center = centre
        cam.zoom = 8 * DETAIL_PX / 512  # a patch spans 192 screen px: dots and edges drawn
        assert edges.visible and nodes.visible
        mid = edges.data[:, 0] + edges.data[:, 1] / 2
        # a few views' worth, every edge on screen among them
        assert 0 < len(mid) < n_edges / 4
        on_screen = {tuple(m) for m in every_mid[in_view(every_mid, edges)]}
        assert on_screen and on_screen <= {tuple(m) for m in mid}
        # the layer holds the dots near the view of the levels switched on, no others
        pts = {tuple(p) for p in np.asarray(nodes.data)}
        assert 0 < len(pts) < len(every_pos) / 4
        parts = part_visible(viewer, str(slide.path))
        on = np.array([parts[lv] for lv in every_level])
        assert {tuple(p) for p in every_pos[in_view(every_pos, nodes) & on]} <= pts
        assert set(nodes.features["level"]) <= {lv for lv, v in parts.items() if v}
        drawn.append({tuple(m) for m in mid})
        if centre == (2000.0, 2000.0):
            set_graph_part(viewer, str(slide.path), "spatial", False)
            set_graph_part(viewer, str(slide.path), "x10", False)
    assert not drawn[0] & drawn[1]  # the pan brought in the edges of the new place
    # switched off before the pan, still off after it
    assert not part_visible(viewer, str(slide.path))["spatial"]
    kind = edges.features["type"].to_numpy()
    assert (np.asarray(edges.edge_color)[kind == "spatial", 3] == 0).all()
    assert "x10" not in set(nodes.features["level"]) and len(nodes.data) > 0
    # zoomed out, the whole graph is the grid alone; back in, its dots and edges return
    viewer.reset_view()
    assert not edges.visible
    cam.zoom = 2 * DETAIL_PX / 512
    assert edges.visible and 0 < len(edges.data) < n_edges
