import numpy as np
import pytest

from napari_higt.explain.inspect import attention_neighbours, node_at, ranked_nodes
from napari_higt.explain.maps import score_maps
from napari_higt.explain.normalise import node_values, percentile, signed_percentile
from napari_higt.levels import LEVEL_IDS

DIMS = (4443, 3567)


def test_score_maps_paint_each_level_as_percentiles(tcga_graph):
    graph, _ = tcga_graph
    rng = np.random.default_rng(0)
    imp = rng.random(graph.num_nodes)
    bi = rng.normal(size=graph.num_nodes)
    maps = score_maps(graph, {"node_importance": imp, "bi_region_to_patch": bi}, DIMS)
    assert [(m.name, m.level) for m in maps] == [
        ("node_importance", "x5"), ("node_importance", "x10"), ("bi_region_to_patch", "x10")]
    x10 = maps[1]
    idx = np.flatnonzero(graph.level == LEVEL_IDS["x10"])
    top = idx[np.argmax(imp[idx])]  # the highest x10 patch paints 100, whatever its raw value
    x, y = graph.coords[top]
    ds = x10.raster.downsample
    assert x10.raster.values[int(y / ds) + 1, int(x / ds) + 1] == pytest.approx(100.0)
    assert x10.clim == (0.0, 100.0) and "percentile" in x10.legend("tumour")
    assert maps[2].diverging and maps[2].clim == (-100.0, 100.0)
    raw = score_maps(graph, {"node_importance": imp}, DIMS, levels=["x10"], raw=True)[0]
    assert raw.raster.values[int(y / ds) + 1, int(x / ds) + 1] == pytest.approx(imp[top], rel=1e-6)
    assert raw.legend().startswith("raw value")
    with pytest.raises(ValueError, match="values for"):
        score_maps(graph, {"x": imp[:-1]}, DIMS)


def test_percentiles_rank_within_the_level_and_keep_sign_and_nan():
    np.testing.assert_allclose(percentile([3.0, 1.0, 2.0, np.nan]), [100, 0, 50, np.nan])
    np.testing.assert_allclose(percentile([5.0, 5.0]), [50, 50])  # nothing stands out
    np.testing.assert_allclose(signed_percentile([-4.0, 1.0, 0.0, 2.0]),
                               [-100, 100 / 3, 0, 200 / 3])  # only an exact 0 is 0
    level = np.array([0, 1, 1, 2, 2, 2])
    shown = node_values(level, {"bi_region_to_patch": np.array([9, 9, 9, -1.0, 2.0, 3.0]),
                                "node_importance": np.array([1, 10, 20, 0.1, 0.2, 0.3])})
    # x10-only score: missing (NaN) on the thumbnail and the x5 regions, never 0
    assert np.isnan(shown["bi_region_to_patch"][:3]).all()
    np.testing.assert_allclose(shown["bi_region_to_patch"][3:], [-100 / 3, 200 / 3, 100])
    # each level ranked on its own: the x5 20 and the x10 0.3 are both the top of theirs
    np.testing.assert_allclose(shown["node_importance"][1:], [0, 100, 0, 50, 100])


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
