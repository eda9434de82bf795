"""The hierarchical graph drawn over a real slide."""

import numpy as np

from napari_higt.graph.layout import edge_segments, node_centres
from napari_higt.slide import Slide
from napari_higt.ui.overlays import add_graph_overlay, graph_layer_data


def test_layer_data_match_graph(tcga_path, tcga_graph):
    graph, tiling = tcga_graph
    with Slide(tcga_path, mpp=1.0) as s:
        data = graph_layer_data(graph, s)
    kinds = [(kw["name"].split(" ", 1)[1], kind) for _, kw, kind in data]
    assert kinds == [("thumbnail nodes", "points"), ("x5 nodes", "points"),
                     ("x10 nodes", "points"), ("scale edges", "vectors"),
                     ("spatial edges", "vectors")]
    counts = graph.counts()
    assert [len(d[0]) for d in data[:3]] == [counts["thumbnail"], counts["x5"], counts["x10"]]
    # The thumbnail node: one marker at the slide centre, a region wide, grey.
    pts, kw, _ = data[0]
    np.testing.assert_allclose(pts, [[3567 / 2, 4443 / 2]])
    assert kw["size"] == tiling.levels["x5"].size0 and kw["border_color"] == "#9e9e9e"
    assert list(kw["features"]["level"]) == ["thumbnail"]
    # Patches are squares of their tile size, centred on the tile: (row, col) order.
    pts, kw, _ = data[2]
    size = tiling.levels["x10"].size0
    np.testing.assert_allclose(kw["size"], size)
    np.testing.assert_allclose(pts[0], tiling.levels["x10"].coords[0][::-1] + size / 2)
    # Each undirected spatial edge once; segments join node centres.
    n_spatial = int(((graph.edge_type == 0) & (graph.edge_index[0] < graph.edge_index[1])).sum())
    assert len(data[4][0]) == n_spatial > 0
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
    assert [ly.name.split(" ", 1)[1] for ly in layers[:3]] == [
        "thumbnail nodes", "x5 nodes", "x10 nodes"]
    for layer in layers:
        np.testing.assert_allclose(layer.scale, (1.0, 1.0))
    assert len(layers[0].data) == 1 and layers[0].features["node"][0] == 0
    patches = layers[2]
    assert list(patches.features["level"].unique()) == ["x10"]
    assert patches.features["node"].min() > 0
    # Same world position as the image: a patch centre lands on the slide's tissue.
    c = node_centres(graph, slide.dimensions)[patches.features["node"][0]]
    world = patches.data_to_world(patches.data[0])
    np.testing.assert_allclose(world, c[::-1] * 1.0)
    # Re-adding replaces instead of duplicating.
    add_graph_overlay(viewer, graph, slide)
    assert len(viewer.layers) == 1 + len(layers)


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
