import numpy as np
import pytest

from napari_higt.explain.inspect import attention_neighbours, node_at, ranked_nodes
from napari_higt.explain.maps import relative_contribution, score_maps
from napari_higt.levels import LEVEL_IDS

DIMS = (4443, 3567)


def test_score_maps_paint_each_level(tcga_graph):
    graph, _ = tcga_graph
    rng = np.random.default_rng(0)
    imp = rng.random(graph.num_nodes)
    bi = rng.random(graph.num_nodes) + 0.5
    maps = score_maps(graph, {"node_importance": imp, "bi_region_to_patch": bi}, DIMS)
    assert [(m.name, m.level) for m in maps] == [
        ("node_importance", "x5"), ("node_importance", "x10"), ("bi_region_to_patch", "x10")]
    x10 = maps[1]
    first = np.flatnonzero(graph.level == LEVEL_IDS["x10"])[0]
    x, y = graph.coords[first]
    ds = x10.raster.downsample
    assert x10.raster.values[int(y / ds) + 1, int(x / ds) + 1] == pytest.approx(imp[first], rel=1e-6)
    assert maps[2].diverging and maps[2].clim[0] == -maps[2].clim[1]
    with pytest.raises(ValueError, match="values for"):
        score_maps(graph, {"x": imp[:-1]}, DIMS)


def test_relative_contribution_is_symmetric_in_log2():
    v = np.array([1.0, 2.0, 0.5, 9.0])
    mask = np.array([True, True, True, False])
    r = relative_contribution(v, mask)
    mean = v[:3].mean()
    np.testing.assert_allclose(r[:3], np.log2(v[:3] / mean))
    assert np.isnan(r[3])


def test_node_at_and_ranking(tcga_graph):
    graph, tiling = tcga_graph
    idx = np.flatnonzero(graph.level == LEVEL_IDS["x10"])
    n = idx[3]
    x, y = graph.coords[n] + 10
    assert node_at(graph, x, y) == n
    region = node_at(graph, x, y, level="x5")
    assert graph.parent_index[n] == region
    assert node_at(graph, -5000, -5000) is None
    score = np.zeros(graph.num_nodes)
    score[idx[7]] = 3.0
    score[idx[2]] = 2.0
    order = ranked_nodes(graph, score)
    assert list(order[:2]) == [idx[7], idx[2]] and len(order) == len(idx)


def test_attention_neighbours(tcga_graph):
    graph, _ = tcga_graph
    n = np.flatnonzero(graph.level == LEVEL_IDS["x10"])[5]
    w = np.zeros(graph.edge_index.shape[1])
    incoming = np.flatnonzero(graph.edge_index[1] == n)
    w[incoming] = np.arange(len(incoming), dtype=float)
    top = attention_neighbours(graph, n, w, k=3)
    assert [t.weight for t in top] == sorted(w[incoming])[::-1][:3]
    rel = {t.relation for t in attention_neighbours(graph, n, w, k=50)}
    assert rel == {"neighbour", "parent"}
