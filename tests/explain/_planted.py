"""Planted-evidence slides from real tissue: handcrafted features of real H&E tiles laid on a
grid, tissue B planted in a few patches of the positive slides, and each slide's twin with
the planted patches back to tissue A (the background of the deletion tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GRID = 6  # x10 patches per side (3 x 3 regions)
TILE = 128


def tile_features(rgb: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Handcrafted features (n, 64) of ``n`` random ``TILE`` px crops (turned, flipped)."""
    from napari_higt.features.handcrafted import HandcraftedExtractor

    h, w = rgb.shape[:2]
    tiles = []
    for _ in range(n):
        y, x = rng.integers(0, h - TILE + 1), rng.integers(0, w - TILE + 1)
        t = np.rot90(rgb[y:y + TILE, x:x + TILE], int(rng.integers(4)))
        tiles.append(np.ascontiguousarray(t[:, ::-1] if rng.random() < 0.5 else t))
    return HandcraftedExtractor()(np.stack(tiles))


def tissue_pools(tissue_rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Feature pools of tissue A (the CMU-1 crop) and B (the TCGA lung image)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    lung = np.asarray(Image.open(REPO / "sample_data" / "tcga_lung_he.png").convert("RGB"))
    return {"A": tile_features(tissue_rgb, rng, 48), "B": tile_features(lung, rng, 24)}


@dataclass
class PlantedSlide:
    data: object  # PyG Data
    x_background: object  # Tensor (N, C): the planted patches back to tissue A
    units: np.ndarray  # node index of every x10 patch
    evidence: np.ndarray  # (n_units,) bool: planted tissue B
    label: int


def _graph(f10: np.ndarray, order: np.ndarray | None = None):
    from napari_higt.graph.hierarchy import HierarchicalGraph

    gy, gx = np.mgrid[0:GRID, 0:GRID]
    g10 = np.column_stack([gx.ravel(), gy.ravel()])
    if order is not None:
        g10, f10 = g10[order], f10[order]
    r = np.unique(g10 // 2, axis=0)
    par = np.array([np.flatnonzero((r == v).all(1))[0] for v in g10 // 2])
    f5 = np.stack([f10[par == i].mean(0) for i in range(len(r))])
    coords = {"thumbnail": np.zeros((1, 2), np.int64), "x5": r * 1024, "x10": g10 * 512}
    feats = {"thumbnail": f10.mean(0, keepdims=True), "x5": f5, "x10": f10}
    return HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": 512, "x5": 1024})


def planted_slide(pools: dict[str, np.ndarray], label: int, seed: int, n_evidence: int = 4,
                  order: np.ndarray | None = None) -> PlantedSlide:
    """One slide: tissue A everywhere, ``n_evidence`` patches of B when ``label`` is 1.

    ``order`` lays the x10 patches out in another node order (same slide)."""
    import torch

    rng = np.random.default_rng(seed)
    n = GRID * GRID
    f_bg = pools["A"][rng.integers(len(pools["A"]), size=n)]
    evidence = np.zeros(n, bool)
    if label:
        evidence[rng.choice(n, n_evidence, replace=False)] = True
    f10 = f_bg.copy()
    f10[evidence] = pools["B"][rng.integers(len(pools["B"]), size=int(evidence.sum()))]
    g, g_bg = _graph(f10, order), _graph(f_bg, order)
    data = g.to_pyg()
    units = np.flatnonzero(g.level == 2)
    ev = evidence if order is None else evidence[order]
    return PlantedSlide(data, torch.from_numpy(g_bg.x.astype(np.float32)), units, ev, label)


def train_abmil(pools: dict[str, np.ndarray], n: int = 24, steps: int = 60):
    """ABMIL trained to tell slides with planted tissue B from slides without (seconds)."""
    import torch
    from torch_geometric.data import Batch

    from napari_higt.models import build_model
    from napari_higt.models.norm import fit_standardizer

    slides = [planted_slide(pools, i % 2, 100 + i) for i in range(n)]
    graphs = [s.data for s in slides]
    torch.manual_seed(0)
    model = build_model({"model": "abmil", "in_dim": graphs[0].x.shape[1], "n_classes": 2,
                         "hidden": 16, "dropout": 0.0})
    fit_standardizer(model, graphs)
    batch = Batch.from_data_list(graphs)
    y = torch.tensor([s.label for s in slides])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch).logits, y).backward()
        opt.step()
    return model.eval()
