"""Synthetic hierarchical slide graphs with the fields of docs/contracts.md, made in torch."""

from __future__ import annotations

import os

import pytest
import torch
from torch_geometric.data import Data

# The machine is shared: keep every test single-threaded.
torch.set_num_threads(int(os.environ.get("NAPARI_HIGT_TEST_THREADS", "1")))

_OFFSETS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def _grid_edges(gxy: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """8-neighbour edges (both directions) between nodes ``ids`` at integer grid cells."""
    if ids.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    w, h = int(gxy[:, 0].max()) + 3, int(gxy[:, 1].max()) + 3
    table = torch.full((h, w), -1, dtype=torch.long)
    table[gxy[:, 1] + 1, gxy[:, 0] + 1] = ids  # one cell margin: no bounds checks needed
    out = []
    for dx, dy in _OFFSETS:
        nb = table[gxy[:, 1] + 1 + dy, gxy[:, 0] + 1 + dx]
        ok = nb >= 0
        out.append(torch.stack([nb[ok], ids[ok]]))
    return torch.cat(out, 1)


def _scaled(gxy: torch.Tensor) -> torch.Tensor:
    m = gxy.max(0).values.clamp(min=1).float() if gxy.numel() else torch.ones(2)
    return 2 * gxy.float() / m - 1


def make_slide_graph(
    rows: int = 4,
    cols: int = 5,
    in_dim: int = 16,
    seed: int = 0,
    region_keep: float = 0.85,
    child_keep: float = 0.8,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """One synthetic slide: thumbnail, regions on a grid, up to 4 child patches per region.

    Node order as the contract: thumbnail, regions, patches. Spatial 8-neighbour edges within a
    level, scale edges node <-> parent, both directions. Features are standard normal.
    """
    g = torch.Generator().manual_seed(seed)
    ry, rx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    rxy = torch.stack([rx.reshape(-1), ry.reshape(-1)], 1)
    keep = torch.rand(rxy.size(0), generator=g) < region_keep
    keep[0] = True  # at least one region
    rxy = rxy[keep]
    n_r = rxy.size(0)
    # 2 x 2 children per region at twice the magnification, some dropped (background).
    sub = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    pxy = (2 * rxy.unsqueeze(1) + sub.unsqueeze(0)).reshape(-1, 2)
    p_region = torch.arange(n_r).repeat_interleave(4)
    pkeep = torch.rand(pxy.size(0), generator=g) < child_keep
    pkeep[0] = True  # at least one patch
    pxy, p_region = pxy[pkeep], p_region[pkeep]
    n_p = pxy.size(0)

    r_ids = 1 + torch.arange(n_r)
    p_ids = 1 + n_r + torch.arange(n_p)
    n = 1 + n_r + n_p
    level = torch.cat([torch.zeros(1), torch.ones(n_r), torch.full((n_p,), 2)]).long()
    parent = torch.cat([torch.zeros(1, dtype=torch.long), torch.zeros(n_r, dtype=torch.long),
                        r_ids[p_region]])
    pos = torch.cat([torch.zeros(1, 2), _scaled(rxy), _scaled(pxy)])
    coords = torch.cat([torch.zeros(1, 2, dtype=torch.long), rxy * 2048, pxy * 1024])
    spatial = torch.cat([_grid_edges(rxy, r_ids), _grid_edges(pxy, p_ids)], 1)
    child = torch.arange(1, n)
    up = torch.stack([child, parent[1:]])
    scale = torch.cat([up, up.flip(0)], 1)
    edge_index = torch.cat([spatial, scale], 1)
    edge_type = torch.cat([torch.zeros(spatial.size(1)), torch.ones(scale.size(1))]).long()
    x = torch.randn(n, in_dim, generator=g).to(dtype)
    return Data(x=x, level=level, parent_index=parent, pos=pos, coords=coords,
                edge_index=edge_index, edge_type=edge_type)


def permute_within_levels(data: Data, seed: int = 0) -> tuple[Data, torch.Tensor]:
    """Shuffle node order within each level; returns the graph and ``perm`` (new -> old)."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for lv in (0, 1, 2):
        ids = (data.level == lv).nonzero().view(-1)
        parts.append(ids[torch.randperm(ids.numel(), generator=g)])
    perm = torch.cat(parts)  # new position i holds old node perm[i]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    e = torch.randperm(data.edge_index.size(1), generator=g)  # edge order shuffled too
    out = Data(
        x=data.x[perm], level=data.level[perm], parent_index=inv[data.parent_index[perm]],
        pos=data.pos[perm], coords=data.coords[perm],
        edge_index=inv[data.edge_index[:, e]], edge_type=data.edge_type[e],
    )
    return out, perm


@pytest.fixture
def slide_graph():
    """Factory fixture for :func:`make_slide_graph`."""
    return make_slide_graph
