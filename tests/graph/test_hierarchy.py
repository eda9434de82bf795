"""HierarchicalGraph on hand-made grids: exact edge sets, parents, PyG batching."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_higt.errors import FeatureError, GraphError
from napari_higt.features.store import FeatureStore, read_graph
from napari_higt.graph import EDGE_SCALE, EDGE_SPATIAL, HierarchicalGraph, spatial_edges

S10 = 100  # level-0 px of an x10 patch in these grids; regions are 200


def _edges(g: HierarchicalGraph, etype: int) -> set[tuple[int, int]]:
    m = g.edge_type == etype
    return set(map(tuple, g.edge_index[:, m].T.tolist()))


def _both(pairs) -> set[tuple[int, int]]:
    return {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}


def _brute_force(grid: np.ndarray) -> set[tuple[int, int]]:
    out = set()
    for i in range(len(grid)):
        for j in range(len(grid)):
            d = np.abs(grid[i] - grid[j])
            if i != j and d.max() == 1:
                out.add((i, j))
    return out


@pytest.fixture
def small():
    """Patches (col, row): p0 (0,0) p1 (1,0) p2 (0,1) p3 (2,1) p4 (3,3) p5 (5,5).

    Regions: r0 (0,0) [p0 p1 p2: 3 children], r1 (1,0) [p3], r2 (1,1) [p4], r3 (2,2) [p5],
    r4 (3,0) [no child]. Node ids: thumbnail 0, regions 1..5, patches 6..11.
    """
    g10 = np.array([(0, 0), (1, 0), (0, 1), (2, 1), (3, 3), (5, 5)])
    g5 = np.array([(0, 0), (1, 0), (1, 1), (2, 2), (3, 0)])
    rng = np.random.default_rng(0)
    feats = {"thumbnail": rng.normal(size=(1, 8)), "x5": rng.normal(size=(5, 8)),
             "x10": rng.normal(size=(6, 8))}
    coords = {"thumbnail": np.zeros((1, 2)), "x5": g5 * 2 * S10, "x10": g10 * S10}
    return coords, feats


def test_exact_edges_small_grid(small):
    coords, feats = small
    g = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": S10, "x5": 2 * S10})
    assert g.counts() == {"thumbnail": 1, "x5": 5, "x10": 6}
    assert g.level.tolist() == [0] + [1] * 5 + [2] * 6
    # node order: thumbnail, regions, patches, each in the given order
    np.testing.assert_allclose(g.x[0], feats["thumbnail"][0], rtol=1e-6)
    np.testing.assert_allclose(g.x[1:6], feats["x5"], rtol=1e-6)
    np.testing.assert_allclose(g.x[6:], feats["x10"], rtol=1e-6)
    assert g.parent_index.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 4]
    spatial = _both([(1, 2), (1, 3), (2, 3), (3, 4), (6, 7), (6, 8), (7, 8), (7, 9)])
    assert _edges(g, EDGE_SPATIAL) == spatial
    scale = _both([(1, 0), (2, 0), (3, 0), (4, 0), (5, 0),
                   (6, 1), (7, 1), (8, 1), (9, 2), (10, 3), (11, 4)])
    assert _edges(g, EDGE_SCALE) == scale
    # no duplicates, no self loops, every edge typed
    assert g.edge_index.shape[1] == len(spatial) + len(scale) == g.edge_type.shape[0]
    assert not np.any(g.edge_index[0] == g.edge_index[1])
    assert g.synthesized_regions == 0


def test_full_3x3_block_with_hole_and_borders():
    # a 3x3 block of patches without its centre, at the slide's top-left border
    g10 = np.array([(x, y) for y in range(3) for x in range(3) if (x, y) != (1, 1)])
    e = spatial_edges(g10)
    got = set(map(tuple, e.T.tolist()))
    # ring of 8: each corner touches its 2 edge-neighbours; each edge-middle its 2 corners,
    # and the 4 edge-middles touch each other diagonally around the hole
    idx = {tuple(p): i for i, p in enumerate(g10.tolist())}
    pairs = [((0, 0), (1, 0)), ((1, 0), (2, 0)), ((2, 0), (2, 1)), ((2, 1), (2, 2)),
             ((2, 2), (1, 2)), ((1, 2), (0, 2)), ((0, 2), (0, 1)), ((0, 1), (0, 0)),
             ((1, 0), (0, 1)), ((1, 0), (2, 1)), ((2, 1), (1, 2)), ((1, 2), (0, 1))]
    want = _both([(idx[a], idx[b]) for a, b in pairs])
    assert got == want
    assert len(got) == 24


def test_spatial_edges_match_brute_force_random_grid():
    rng = np.random.default_rng(1)
    cells = rng.choice(40 * 30, size=300, replace=False)
    grid = np.stack([cells % 40, cells // 40], axis=1) - 7  # negative positions too
    got = set(map(tuple, spatial_edges(grid).T.tolist()))
    assert got == _brute_force(grid)


def test_single_patch_and_isolated_nodes():
    g = HierarchicalGraph.from_arrays(
        {"x10": np.array([[0, 0]])}, {"x10": np.ones((1, 4))}, patch_size={"x10": 512}
    )
    assert g.counts() == {"thumbnail": 1, "x5": 1, "x10": 1}  # region made up from the patch
    assert g.synthesized_regions == 1
    assert _edges(g, EDGE_SPATIAL) == set()
    assert _edges(g, EDGE_SCALE) == _both([(1, 0), (2, 1)])
    np.testing.assert_allclose(g.pos(), 0.0)


def test_orphan_patches_get_mean_region(small):
    coords, feats = small
    # drop region r0: p0 p1 p2 lose their parent; a region is made up as their mean
    coords = dict(coords, x5=coords["x5"][1:])
    feats = dict(feats, x5=feats["x5"][1:])
    g = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": S10})
    assert g.synthesized_regions == 1
    assert g.counts()["x5"] == 5
    new = 5  # appended after the 4 given regions (node ids 1..4)
    assert g.coords[new].tolist() == [0, 0]
    np.testing.assert_allclose(g.x[new], feats["x10"][:3].mean(axis=0), rtol=1e-5)
    assert g.parent_index[6:9].tolist() == [new] * 3


def test_patch_size_inferred_from_coords(small):
    coords, feats = small
    a = HierarchicalGraph.from_arrays(coords, feats)
    b = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": S10})
    assert a.patch_size == b.patch_size == {"x10": 100.0, "x5": 200.0}
    assert _edges(a, EDGE_SPATIAL) == _edges(b, EDGE_SPATIAL)


def test_float_patch_size_and_rounded_coords():
    # mpp 0.499: an x10 patch is 1026.05 level-0 px; coords are rounded to int
    s = 512 / 0.499
    g10 = np.array([(0, 0), (1, 0), (2, 0), (1, 1), (3, 1)])
    coords = {"x10": np.rint(g10 * s).astype(int), "x5": np.rint(np.array([(0, 0), (1, 0)]) * 2 * s)}
    feats = {"x10": np.zeros((5, 3)), "x5": np.zeros((2, 3))}
    g = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": s, "x5": 2 * s})
    assert g.parent_index[3:].tolist() == [1, 1, 2, 1, 2]
    assert g.synthesized_regions == 0


def test_pos_scaled_per_level(small):
    coords, feats = small
    g = HierarchicalGraph.from_arrays(coords, feats)
    pos = g.pos()
    assert pos.dtype == np.float32 and pos.min() >= -1 and pos.max() <= 1
    np.testing.assert_allclose(pos[0], [0, 0])
    np.testing.assert_allclose(pos[6], [-1, -1])  # patch (0, 0)
    np.testing.assert_allclose(pos[11], [1, 1])  # patch (5, 5)
    np.testing.assert_allclose(pos[9], [2 * 2 / 5 - 1, 2 * 1 / 5 - 1], rtol=1e-6)


def test_empty_and_bad_inputs():
    with pytest.raises(GraphError, match="no tissue"):
        HierarchicalGraph.from_arrays({"x10": np.zeros((0, 2))}, {"x10": np.zeros((0, 4))})
    with pytest.raises(GraphError, match="no tissue"):
        HierarchicalGraph.from_arrays({"x5": np.zeros((1, 2))}, {"x5": np.zeros((1, 4))})
    with pytest.raises(GraphError, match="share a grid cell"):
        HierarchicalGraph.from_arrays({"x10": np.array([[0, 0], [10, 0]])},
                                      {"x10": np.zeros((2, 4))}, patch_size={"x10": 100})
    with pytest.raises(GraphError, match="dims differ"):
        HierarchicalGraph.from_arrays({"x10": np.zeros((1, 2)), "x5": np.zeros((1, 2))},
                                      {"x10": np.zeros((1, 4)), "x5": np.zeros((1, 5))},
                                      patch_size={"x10": 100})


def test_to_pyg_fields_and_batching(small):
    import torch
    from torch_geometric.data import Batch
    from torch_geometric.loader import DataLoader

    coords, feats = small
    g = HierarchicalGraph.from_arrays(coords, feats, slide_id="s1")
    d = g.to_pyg()
    assert d.x.dtype == torch.float32 and d.x.shape == (12, 8)
    for key in ("level", "parent_index", "coords", "edge_index", "edge_type"):
        assert getattr(d, key).dtype == torch.int64, key
    assert d.pos.dtype == torch.float32 and d.pos.shape == (12, 2)
    assert d.edge_index.shape[0] == 2 and d.edge_type.shape[0] == d.edge_index.shape[1]
    assert d.num_nodes == 12
    d.validate(raise_on_error=True)

    b = Batch.from_data_list([d, d])
    assert b.num_nodes == 24
    assert b.parent_index[12:].tolist() == (d.parent_index + 12).tolist()
    assert b.edge_index[:, d.edge_index.shape[1]:].min() >= 12
    batches = list(DataLoader([d, d, d], batch_size=2))
    assert [x.num_graphs for x in batches] == [2, 1]


def test_from_store_roundtrip_and_checks(small, tmp_path):
    coords, feats = small
    p = FeatureStore.write(
        tmp_path / "s.h5", {k: np.asarray(v, np.int64) for k, v in coords.items()}, feats,
        attrs={"extractor": "handcrafted"},
        level_attrs={"x10": {"patch_size_level0": S10}, "x5": {"patch_size_level0": 2 * S10}},
    )
    g = read_graph(p)
    ref = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": S10})
    assert g.slide_id == "s"
    np.testing.assert_array_equal(g.edge_index, ref.edge_index)
    np.testing.assert_allclose(g.x, ref.x, rtol=1e-6)
    with pytest.raises(FeatureError, match="'handcrafted' extractor"):
        read_graph(p, extractor="cnn")
    with pytest.raises(FeatureError, match="8-dim"):
        read_graph(p, dim=1024)


def test_from_clam_file(tmp_path):
    import h5py

    g10 = np.array([(0, 0), (1, 0), (2, 0), (3, 1)])
    with h5py.File(tmp_path / "clam.h5", "w") as h5:
        h5.create_dataset("features", data=np.arange(16, dtype=np.float32).reshape(4, 4))
        c = h5.create_dataset("coords", data=g10 * 256)
        c.attrs["patch_size"] = 256
        c.attrs["patch_level"] = 0
    g = read_graph(tmp_path / "clam.h5")
    # regions (0,0) [patches (0,0) (1,0)] and (1,0) [(2,0) (3,1)] are made up: ids 1, 2;
    # patches are ids 3..6
    assert g.counts() == {"thumbnail": 1, "x5": 2, "x10": 4}
    assert g.synthesized_regions == 2
    assert g.parent_index.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert _edges(g, EDGE_SPATIAL) == _both([(1, 2), (3, 4), (4, 5), (5, 6)])
    np.testing.assert_allclose(g.x[1], np.arange(8, dtype=np.float32).reshape(2, 4).mean(0))


def test_build_20k_patches_under_a_second():
    rng = np.random.default_rng(0)
    side = 200
    cells = rng.choice(side * side, size=20_000, replace=False)
    g10 = np.stack([cells % side, cells // side], axis=1)
    g5 = np.unique(g10 // 2, axis=0)
    coords = {"x10": g10 * 512, "x5": g5 * 1024}
    feats = {"x10": np.zeros((len(g10), 64), np.float32),
             "x5": np.zeros((len(g5), 64), np.float32)}
    HierarchicalGraph.from_arrays(coords, feats)  # warm-up
    t = time.perf_counter()
    g = HierarchicalGraph.from_arrays(coords, feats)
    dt = time.perf_counter() - t
    assert g.counts()["x10"] == 20_000 and g.synthesized_regions == 0
    assert dt < 2.0, f"{dt:.2f} s"  # target < 1 s; slack for a loaded 2-core CI box
