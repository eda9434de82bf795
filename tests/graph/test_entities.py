"""SLIC entity graphs: adjacency of known regions, background dropping, real tissue, cache."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.graph.entities import (
    ENTITY_FEATURE_DIM,
    ENTITY_FEATURE_NAMES,
    entity_graph,
    region_adjacency,
)
from napari_higt.graph.entity_batch import entity_graphs

# H&E-like colours (saturated enough to count as tissue) and glass white.
PINK, PURPLE, RED, BLUE = (230, 150, 190), (110, 60, 150), (200, 70, 90), (80, 90, 170)
WHITE = (250, 250, 250)


def _quadrants(colours, size=64):
    img = np.zeros((size, size, 3), np.uint8)
    h = size // 2
    for (y, x), c in zip(((0, 0), (0, 1), (1, 0), (1, 1)), colours):
        img[y * h:(y + 1) * h, x * h:(x + 1) * h] = c
    return img


def _edge_set(ei):
    return {(int(a), int(b)) for a, b in np.asarray(ei).T}


def _quadrant_of(graph, size=64):
    """Entity index -> quadrant id (0 TL, 1 TR, 2 BL, 3 BR) from the centroids."""
    c = graph.centroid.numpy()
    return {i: int(c[i, 1] >= size / 2) * 2 + int(c[i, 0] >= size / 2) for i in range(len(c))}


def test_region_adjacency_of_a_known_label_grid():
    # 3 x 3 blocks labelled 0..8 row-major: 4-neighbour grid adjacency, no diagonals.
    labels = np.kron(np.arange(9).reshape(3, 3), np.ones((4, 4), int))
    ei = region_adjacency(labels)
    expected = set()
    for r in range(3):
        for c in range(3):
            a = r * 3 + c
            if c < 2:
                expected |= {(a, a + 1), (a + 1, a)}
            if r < 2:
                expected |= {(a, a + 3), (a + 3, a)}
    assert _edge_set(ei) == expected
    assert ei.dtype == np.int64 and ei.shape == (2, 24)
    # background (-1) takes part in no edge
    labels[:4] = -1
    assert all(a >= 3 and b >= 3 for a, b in _edge_set(region_adjacency(labels)))


def test_entity_graph_of_synthetic_quadrants_has_expected_adjacency():
    g = entity_graph(_quadrants([PINK, PURPLE, RED, BLUE]), n_segments=4, compactness=10)
    assert g.num_nodes == 4
    quad = _quadrant_of(g)
    assert sorted(quad.values()) == [0, 1, 2, 3]
    got = {(quad[a], quad[b]) for a, b in _edge_set(g.edge_index)}
    ring = {(0, 1), (0, 2), (1, 3), (2, 3)}
    assert got == ring | {(b, a) for a, b in ring}  # touching sides only, no diagonals
    # every pixel of a quadrant carries that quadrant's entity
    lab = g.label_image
    for i, q in quad.items():
        y, x = divmod(q, 2)
        assert (lab[y * 32:(y + 1) * 32, x * 32:(x + 1) * 32] == i).all()
    assert g.x.shape == (4, ENTITY_FEATURE_DIM)
    means = g.x[:, :3].numpy() * 255
    for i, q in quad.items():
        assert np.allclose(means[i], [PINK, PURPLE, RED, BLUE][q], atol=1)


def test_background_entities_are_dropped():
    g = entity_graph(_quadrants([PINK, PURPLE, RED, WHITE]), n_segments=4, compactness=10)
    assert g.num_nodes == 3
    quad = _quadrant_of(g)
    assert sorted(quad.values()) == [0, 1, 2]
    assert (g.label_image[32:, 32:] == -1).all()
    got = {(quad[a], quad[b]) for a, b in _edge_set(g.edge_index)}
    assert got == {(0, 1), (1, 0), (0, 2), (2, 0)}


def test_entity_graph_on_real_tissue(tissue_rgb):
    patch = tissue_rgb[:256, :256]
    g = entity_graph(patch, n_segments=100)
    n = g.num_nodes
    assert 8 <= n <= 120
    assert len(ENTITY_FEATURE_NAMES) == ENTITY_FEATURE_DIM == g.x.shape[1] == 40
    assert np.isfinite(g.x.numpy()).all()
    ei = g.edge_index.numpy()
    edges = _edge_set(ei)
    assert edges == {(b, a) for a, b in edges}  # undirected
    assert all(a != b for a, b in edges) and ei.max() < n
    assert g.pos.shape == (n, 2) and np.abs(g.pos.numpy()).max() <= 1.0
    lab = g.label_image
    assert lab.shape == (256, 256) and set(np.unique(lab)) <= set(range(-1, n))
    assert set(range(n)) <= set(np.unique(lab))
    crop = entity_graph(patch, n_segments=100, features="crop", crop_size=8)
    assert crop.x.shape == (n, 3 * 8 * 8)


def test_entity_graphs_pool_and_cache(tissue_rgb, tmp_path):
    patches = [tissue_rgb[:128, :128], tissue_rgb[128:256, :128], tissue_rgb[:128, 128:256]]
    first = entity_graphs(patches, n_jobs=2, cache_dir=tmp_path, n_segments=30)
    assert len(list(tmp_path.glob("*.npz"))) == 3
    again = entity_graphs(patches, n_jobs=1, cache_dir=tmp_path, n_segments=30)
    serial = [entity_graph(p, n_segments=30) for p in patches]
    for a, b, c in zip(first, again, serial):
        assert np.array_equal(a.x.numpy(), c.x.numpy())
        assert np.array_equal(b.x.numpy(), c.x.numpy())
        assert np.array_equal(b.edge_index.numpy(), c.edge_index.numpy())
        assert np.array_equal(b.label_image, c.label_image)
    other = entity_graphs(patches[:1], cache_dir=tmp_path, n_segments=20)
    assert len(list(tmp_path.glob("*.npz"))) == 4 and other[0].num_nodes != first[0].num_nodes


def test_bad_input():
    with pytest.raises(ValueError, match="RGB patch"):
        entity_graph(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="tissue_mask"):
        entity_graph(_quadrants([PINK] * 4), tissue_mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="unknown entity features"):
        entity_graph(_quadrants([PINK] * 4), n_segments=4, features="pixels")
