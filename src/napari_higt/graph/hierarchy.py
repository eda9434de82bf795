"""The hierarchical slide graph HIGT reads: thumbnail, x5 region and x10 patch nodes.

Built from per-level coordinates (level-0 px, top-left) and features. Node order is the
thumbnail, then the regions, then the patches, each level in the order given (the feature
file's order). Edges:

* spatial: between 8-neighbours of the same level's grid (grid position = coordinate / patch
  size, rounded), both directions;
* scale: between a node and its parent (patch -> region, region -> thumbnail), both
  directions.

Everything is vectorised numpy: grid positions are packed into one int64 key per node, sorted
once, and the 8 neighbour offsets are looked up with :func:`numpy.searchsorted`; no Python
loop over nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_higt.errors import GraphError
from napari_higt.levels import LEVEL_IDS, LEVELS, PATCH, REGION, TARGET_MPP, THUMBNAIL

#: A region's side over a patch's (both are PATCH_SIZE px at their own µm/px).
_REGION_SCALE = TARGET_MPP[REGION] / TARGET_MPP[PATCH]
EDGE_SPATIAL = 0
EDGE_SCALE = 1

_OFFSETS = np.array(
    [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)], dtype=np.int64
)


def grid_positions(coords: np.ndarray, patch_size: float) -> np.ndarray:
    """(N, 2) int64 grid index (col, row) of level-0 top-left coords on a grid of ``patch_size``."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    return np.rint(coords / float(patch_size)).astype(np.int64)


def spatial_edges(grid: np.ndarray) -> np.ndarray:
    """Directed 8-neighbour edges (2, E) between the nodes of one grid, both directions.

    ``grid`` is (N, 2) int64 (col, row). Duplicate positions are an error (two nodes on one
    cell mean the coordinates or the patch size are wrong).
    """
    grid = np.asarray(grid, dtype=np.int64).reshape(-1, 2)
    n = len(grid)
    if n < 2:
        return np.zeros((2, 0), dtype=np.int64)
    g = grid - grid.min(axis=0) + 1  # >= 1 so that every neighbour stays >= 0
    width = int(g[:, 1].max()) + 2
    keys = g[:, 0] * width + g[:, 1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if n > 1 and np.any(sorted_keys[1:] == sorted_keys[:-1]):
        raise GraphError(
            "two nodes of one level share a grid cell: the coordinates do not lie on a grid of "
            "the stated patch size"
        )
    nb = (g[None, :, 0] + _OFFSETS[:, 0:1]) * width + (g[None, :, 1] + _OFFSETS[:, 1:2])  # (8, N)
    idx = np.searchsorted(sorted_keys, nb)
    idx_c = np.minimum(idx, n - 1)
    hit = sorted_keys[idx_c] == nb
    src = np.broadcast_to(np.arange(n, dtype=np.int64), nb.shape)[hit]
    dst = order[idx_c[hit]]
    return np.stack([src, dst]).astype(np.int64)


def _lookup(grid_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index into ``grid_keys`` of each ``query`` key, -1 where absent."""
    if len(grid_keys) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    order = np.argsort(grid_keys, kind="stable")
    sk = grid_keys[order]
    idx = np.minimum(np.searchsorted(sk, query), len(sk) - 1)
    found = sk[idx] == query
    return np.where(found, order[idx], -1).astype(np.int64)


def _infer_patch_size(coords: np.ndarray) -> float | None:
    """Grid step of integer coordinates (gcd of all values); None when it cannot be told."""
    c = np.asarray(coords, dtype=np.int64).reshape(-1)
    c = np.abs(c - c.min()) if len(c) else c
    c = c[c > 0]
    if len(c) == 0:
        return None
    return float(np.gcd.reduce(c))


@dataclass
class HierarchicalGraph:
    """One slide as a three-level graph (see the module docstring and ``docs/contracts.md``)."""

    x: np.ndarray  # (N, C) float32
    level: np.ndarray  # (N,) int64
    parent_index: np.ndarray  # (N,) int64, thumbnail -> itself
    grid: np.ndarray  # (N, 2) int64 grid position in its level
    coords: np.ndarray  # (N, 2) int64 level-0 px top-left
    edge_index: np.ndarray  # (2, E) int64
    edge_type: np.ndarray  # (E,) int64
    patch_size: dict[str, float] = field(default_factory=dict)  # level-0 px per level
    slide_id: str | None = None
    synthesized_regions: int = 0  # regions made up (mean of children) for orphan patches

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        coords: Mapping[str, np.ndarray],
        features: Mapping[str, np.ndarray],
        patch_size: Mapping[str, float] | None = None,
        slide_id: str | None = None,
    ) -> HierarchicalGraph:
        """Build the graph from per-level ``coords`` (N, 2) and ``features`` (N, C).

        Levels are ``"x10"`` (required), ``"x5"`` and ``"thumbnail"`` (optional).
        ``patch_size`` gives each level's tile size in level-0 px (``{"x10": s, "x5": 2 s}``);
        when missing it is inferred from the coordinates (gcd), with x5 = 2 * x10.
        A patch's parent is the region containing its centre; a patch whose region is absent
        gets a region made up of the mean of its patches' features, and a missing thumbnail
        is the mean of all patches (so CLAM/TRIDENT single-level files work).
        """
        unknown = set(coords) - set(LEVELS)
        if unknown:
            raise GraphError(f"unknown level(s) {sorted(unknown)}; expected {list(LEVELS)}")
        if PATCH not in coords or len(np.asarray(coords[PATCH]).reshape(-1, 2)) == 0:
            raise GraphError(
                "the slide has no tissue patches at x10, so there is no graph to build: check "
                "the tissue mask (lower the tissue threshold) or the slide's scale"
            )
        c10 = np.asarray(coords[PATCH], dtype=np.int64).reshape(-1, 2)
        f10 = np.asarray(features[PATCH], dtype=np.float32)
        if f10.ndim != 2 or len(f10) != len(c10):
            raise GraphError(f"x10: {len(c10)} coords but features of shape {f10.shape}")
        dim = f10.shape[1]

        c5 = np.asarray(coords.get(REGION, np.zeros((0, 2))), dtype=np.int64).reshape(-1, 2)
        f5 = np.zeros((0, dim), np.float32)
        if REGION in features:
            f5 = np.asarray(features[REGION], dtype=np.float32)
            f5 = f5.reshape(len(f5), -1) if f5.size else np.zeros((0, dim), np.float32)
            if f5.shape[1] != dim:
                raise GraphError(
                    f"feature dims differ between levels: x10 has {dim}, x5 has {f5.shape[1]}"
                )
        if len(f5) != len(c5):
            raise GraphError(f"x5: {len(c5)} coords but {len(f5)} feature rows")

        sizes = dict(patch_size or {})
        s10 = sizes.get(PATCH)
        s5 = sizes.get(REGION)
        if s10 is None and s5 is not None:
            s10 = s5 / _REGION_SCALE
        if s10 is None:
            s10 = _infer_patch_size(c10)
            g5 = _infer_patch_size(c5) if len(c5) else None
            if g5 is not None and (s10 is None or g5 / 2 > s10 * 1.01):
                s10 = g5 / 2
            if s10 is None:
                raise GraphError(
                    "cannot tell the patch size from a single patch; pass patch_size={'x10': ...}"
                )
        if s5 is None:
            s5 = _REGION_SCALE * s10
        s10, s5 = float(s10), float(s5)

        # parents of patches: the region containing each patch's centre
        g10 = grid_positions(c10, s10)
        g5 = grid_positions(c5, s5)
        centre_region = np.floor((c10 + s10 / 2.0) / s5).astype(np.int64)
        base = np.minimum(g5.min(axis=0) if len(g5) else centre_region.min(axis=0),
                          centre_region.min(axis=0)) - 1
        width = int(max(g5[:, 1].max() if len(g5) else 0, centre_region[:, 1].max()) - base[1]) + 2

        def key(g: np.ndarray) -> np.ndarray:
            return (g[:, 0] - base[0]) * width + (g[:, 1] - base[1])

        parent10 = _lookup(key(g5), key(centre_region))
        n_synth = 0
        orphan = parent10 < 0
        if orphan.any():
            okeys, inv = np.unique(key(centre_region[orphan]), return_inverse=True)
            n_synth = len(okeys)
            cells = np.stack([okeys // width + base[0], okeys % width + base[1]], axis=1)
            sums = np.zeros((n_synth, dim), np.float64)
            np.add.at(sums, inv, f10[orphan])
            counts = np.bincount(inv, minlength=n_synth)[:, None]
            c5 = np.concatenate([c5, np.rint(cells * s5).astype(np.int64)])
            f5 = np.concatenate([f5, (sums / counts).astype(np.float32)])
            g5 = np.concatenate([g5, cells])
            parent10[orphan] = len(c5) - n_synth + inv

        if THUMBNAIL in features and len(np.asarray(features[THUMBNAIL]).reshape(-1, dim)):
            ft = np.asarray(features[THUMBNAIL], dtype=np.float32).reshape(-1, dim)[:1]
        else:
            ft = f10.mean(axis=0, keepdims=True)

        n5, n10 = len(c5), len(c10)
        n = 1 + n5 + n10
        x = np.concatenate([ft, f5, f10]).astype(np.float32, copy=False)
        level = np.concatenate(
            [np.full(1, LEVEL_IDS[THUMBNAIL], np.int64), np.full(n5, LEVEL_IDS[REGION], np.int64),
             np.full(n10, LEVEL_IDS[PATCH], np.int64)]
        )
        parent = np.concatenate(
            [np.zeros(1 + n5, np.int64), parent10 + 1]
        )
        grid = np.concatenate([np.zeros((1, 2), np.int64), g5, g10])
        allc = np.concatenate([np.zeros((1, 2), np.int64), c5, c10])

        e5 = spatial_edges(g5) + 1
        e10 = spatial_edges(g10) + 1 + n5
        child = np.arange(1, n, dtype=np.int64)
        par = parent[1:]
        scale = np.concatenate([np.stack([child, par]), np.stack([par, child])], axis=1)
        edge_index = np.concatenate([e5, e10, scale], axis=1).astype(np.int64)
        edge_type = np.concatenate(
            [np.full(e5.shape[1] + e10.shape[1], EDGE_SPATIAL, np.int64),
             np.full(scale.shape[1], EDGE_SCALE, np.int64)]
        )
        return cls(
            x=x, level=level, parent_index=parent, grid=grid, coords=allc,
            edge_index=edge_index, edge_type=edge_type,
            patch_size={PATCH: s10, REGION: s5}, slide_id=slide_id, synthesized_regions=n_synth,
        )

    # ------------------------------------------------------------------ views
    @property
    def num_nodes(self) -> int:
        return int(len(self.level))

    def counts(self) -> dict[str, int]:
        """Number of nodes per level name."""
        bc = np.bincount(self.level, minlength=len(LEVELS))
        return {name: int(bc[i]) for name, i in LEVEL_IDS.items()}

    def pos(self) -> np.ndarray:
        """(N, 2) float32 grid position scaled to [-1, 1] per level (``2 * p / max - 1``).

        Positions are taken relative to the level's minimum; an axis whose max is 0 (one row or
        one column, and the thumbnail) maps to 0.
        """
        out = np.zeros(self.grid.shape, np.float32)
        for lid in (1, 2):
            m = self.level == lid
            if not m.any():
                continue
            g = self.grid[m] - self.grid[m].min(axis=0)
            mx = g.max(axis=0).astype(np.float64)
            safe = np.where(mx > 0, mx, 1.0)
            out[m] = np.where(mx > 0, 2.0 * g / safe - 1.0, 0.0).astype(np.float32)
        return out

    def to_pyg(self) -> Any:
        """A ``torch_geometric.data.Data`` with the fields of ``docs/contracts.md``."""
        import torch
        from torch_geometric.data import Data

        data = Data(
            x=torch.from_numpy(np.ascontiguousarray(self.x, dtype=np.float32)),
            level=torch.from_numpy(self.level.astype(np.int64)),
            parent_index=torch.from_numpy(self.parent_index.astype(np.int64)),
            pos=torch.from_numpy(self.pos()),
            coords=torch.from_numpy(self.coords.astype(np.int64)),
            edge_index=torch.from_numpy(np.ascontiguousarray(self.edge_index, dtype=np.int64)),
            edge_type=torch.from_numpy(self.edge_type.astype(np.int64)),
        )
        data.num_nodes = self.num_nodes
        if self.slide_id is not None:
            data.slide_id = self.slide_id
        return data
