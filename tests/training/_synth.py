"""Small synthetic slide graphs with a learnable label (built with the real graph builder)."""

from __future__ import annotations

import numpy as np

DIM = 8


def slide_arrays(label: int, seed: int, rows: int = 6, cols: int = 6, dim: int = DIM):
    """Per-level coords/features of one slide; class 1 carries a bright 2 x 2 block."""
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[0:rows, 0:cols]
    g10 = np.column_stack([gx.ravel(), gy.ravel()])
    keep = rng.random(len(g10)) < 0.9
    keep[0] = True
    g10 = g10[keep]
    f10 = rng.normal(0, 1, (len(g10), dim)).astype(np.float32)
    if label == 1:
        x0, y0 = rng.integers(0, cols - 1), rng.integers(0, rows - 1)
        blk = (g10[:, 0] // 2 == x0 // 2) & (g10[:, 1] // 2 == y0 // 2)
        blk |= (np.abs(g10[:, 0] - x0) <= 1) & (np.abs(g10[:, 1] - y0) <= 1)
        f10[blk, :2] += 4.0
    c10 = g10 * 512
    r = np.unique(g10 // 2, axis=0)
    lut = {tuple(v): i for i, v in enumerate(r)}
    par = np.array([lut[tuple(v)] for v in g10 // 2])
    f5 = np.stack([f10[par == i].mean(0) for i in range(len(r))]).astype(np.float32)
    coords = {"thumbnail": np.zeros((1, 2), np.int64), "x5": r * 1024, "x10": c10}
    feats = {"thumbnail": f10.mean(0, keepdims=True), "x5": f5, "x10": f10}
    return coords, feats


def make_graphs(n: int = 24, seed: int = 0, dim: int = DIM):
    """``n`` PyG graphs (balanced labels) and their labels."""
    from napari_higt.graph.hierarchy import HierarchicalGraph

    graphs, labels = [], []
    for i in range(n):
        lab = i % 2
        c, f = slide_arrays(lab, seed * 1000 + i, dim=dim)
        hg = HierarchicalGraph.from_arrays(c, f, patch_size={"x10": 512, "x5": 1024},
                                           slide_id=f"s{i:03d}")
        d = hg.to_pyg()
        d.slide_id = f"s{i:03d}"
        graphs.append(d)
        labels.append(lab)
    return graphs, labels


def write_feature_files(folder, n: int = 12, seed: int = 0, dim: int = DIM,
                        extractor: str = "synthetic"):
    """``n`` feature files ``s000.h5``... and a labels CSV (classes 'benign'/'tumour')."""
    from pathlib import Path

    from napari_higt.features.store import FeatureStore

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["slide_id,label"]
    for i in range(n):
        lab = i % 2
        c, f = slide_arrays(lab, seed * 1000 + i, dim=dim)
        FeatureStore.write(folder / f"s{i:03d}.h5", c, f, attrs={"extractor": extractor},
                           level_attrs={"x10": {"patch_size_level0": 512},
                                        "x5": {"patch_size_level0": 1024}})
        rows.append(f"s{i:03d},{'tumour' if lab else 'benign'}")
    csv = folder.parent / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return folder, csv
