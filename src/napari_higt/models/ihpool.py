"""IHPool: iterative hierarchical pooling (H2-MIL), sparse and vectorised.

Per stage and per slide:

1. fitness ``f = tanh(<x, w_level> / ||w_level||)`` for regions and patches (one learnable
   vector per level; the thumbnail has fitness 1 and is kept as it is);
2. regions are sorted by fitness and seeds taken at even intervals along that order (ratio < 1:
   every ``ceil(1/ratio)``-th; ratio >= 1: ``ratio`` seeds); every region joins the nearest
   seed of its slide in ``(x, y, fitness)``;
3. patches follow their region's cluster; inside each region cluster, up to ``patch_seeds``
   seeds evenly spaced along the fitness order (the highest always included; deterministic,
   where the official code samples at random) and every patch joins its nearest seed;
4. pooled features are the mean of ``f * x`` over the members (scaling by the fitness is the
   TopK/SAG-pool convention and is what lets the fitness vectors learn), positions the mean
   position, edges the contracted adjacency ``S^T (A + I) S`` (non-zero pattern, so every
   pooled node has a self loop), parents the region cluster / thumbnail (tree preserved).

Nothing is dense in the number of nodes: sorting, scatter and per-group seed tables of at most
``patch_seeds`` columns. The nearest region seed (half the regions of a slide are seeds in
the first stage) is found through a k-d tree, O(R log R) where comparing every region with
every seed of its slide is O(R^2); the distances that decide are computed exactly as that
comparison would, so it picks the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from napari_higt.errors import GraphError

# Max entries of one chunk of the (elements x seeds) distance table.
_DIST_CHUNK = 1 << 22
# Groups with more seeds than this are searched through a k-d tree (patch clusters have at
# most ``patch_seeds``, the official second stage 5 regions: those stay a direct comparison).
_DIRECT_MAX_SEEDS = 16
# Nearest seeds the tree proposes; the exact float distances of these decide.
_TREE_CANDIDATES = 8


@dataclass
class PooledGraph:
    """A pooled hierarchical graph plus how it was obtained from the stage input.

    Attributes
    ----------
    x, level, parent_index, pos, edge_index, edge_type, batch
        The pooled graph, same meaning as the input fields (``docs/contracts.md``). Node order:
        the thumbnails (slide order), the region clusters, the patch clusters.
    assignment : Tensor (N_in,)
        Pooled node of every input node.
    fitness : Tensor (N_in,)
        Fitness of every input node (1 for thumbnails).
    """

    x: Tensor
    level: Tensor
    parent_index: Tensor
    pos: Tensor
    edge_index: Tensor
    edge_type: Tensor
    batch: Tensor
    assignment: Tensor
    fitness: Tensor


def _group_desc_order(score: Tensor, group: Tensor) -> Tensor:
    """Permutation sorting by ``group`` ascending, then ``score`` descending (stable)."""
    o1 = torch.argsort(score, descending=True, stable=True)
    o2 = torch.argsort(group[o1], stable=True)
    return o1[o2]


def _seed_positions(counts: Tensor, ratio: float | None, max_seeds: int | None) -> Tensor:
    """Sorted-order positions of the seeds of every group, groups laid out contiguously.

    ``ratio < 1``: every ``ceil(1/ratio)``-th element; otherwise ``k = min(max_seeds, n)``
    seeds at ``floor(i * n / k)``. Returns (positions, seeds per group).
    """
    start = torch.cumsum(counts, 0) - counts
    if ratio is not None and ratio < 1:
        step = math.ceil(1.0 / ratio)
        k = torch.div(counts + step - 1, step, rounding_mode="floor")
    else:
        k = torch.clamp(counts, max=int(max_seeds))
    g = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), k)
    k_start = torch.cumsum(k, 0) - k
    i = torch.arange(g.numel(), device=counts.device) - k_start[g]
    if ratio is not None and ratio < 1:
        off = i * step
    else:
        off = torch.div(i * counts[g], k[g], rounding_mode="floor")
    return start[g] + off, k


def _nearest_seed(
    feat: Tensor, group: Tensor, seed_feat: Tensor, seed_group: Tensor, k: Tensor
) -> Tensor:
    """Index (into the seed list) of the nearest seed of the same group for every element.

    Seeds are laid out group by group (``seed_group`` ascending); a padded table of shape
    (groups, max seeds) holds them so the distances are taken to the own group only.
    """
    n_groups = k.numel()
    if feat.size(0) == 0:
        return torch.zeros(0, dtype=torch.long, device=feat.device)
    max_k = max(int(k.max()), 1)
    if max_k > _DIRECT_MAX_SEEDS:
        return _nearest_seed_tree(feat, group, seed_feat, seed_group)
    k_start = torch.cumsum(k, 0) - k
    slot = torch.arange(seed_group.numel(), device=feat.device) - k_start[seed_group]
    table = feat.new_full((n_groups, max_k, feat.size(1)), float("inf"))
    table[seed_group, slot] = seed_feat
    chunk = max(1, _DIST_CHUNK // max_k)
    best = []
    for i in range(0, feat.size(0), chunk):  # chunks bound memory; not a loop over clusters
        f, g = feat[i : i + chunk], group[i : i + chunk]
        d = ((table[g] - f.unsqueeze(1)) ** 2).sum(-1)  # inf for padding slots
        best.append(torch.argmin(d, dim=1))
    return k_start[group] + torch.cat(best)


def _nearest_seed_tree(feat: Tensor, group: Tensor, seed_feat: Tensor,
                       seed_group: Tensor) -> Tensor:
    """:func:`_nearest_seed` through a k-d tree over the seeds (same answer, O(n log n)).

    Groups are set apart on an extra axis by more than any distance within a group, so the
    tree's nearest seeds are seeds of the element's own group. The tree proposes a few
    candidates (float64); their squared distances are then computed exactly as the direct
    comparison computes them and the smallest wins, ties to the lowest seed index (what
    ``argmin`` over the seed table does). The direct and the tree search differ only if more
    than ``_TREE_CANDIDATES`` seeds tie with the nearest within float32 rounding.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    f = feat.detach().to("cpu", torch.float64).numpy()
    s = seed_feat.detach().to("cpu", torch.float64).numpy()
    span = float(np.ptp(np.concatenate([f, s]), axis=0).max()) if len(s) else 0.0
    apart = 2.0 * span * math.sqrt(f.shape[1]) + 1.0
    tree = cKDTree(np.c_[s, seed_group.cpu().numpy() * apart])
    n_cand = min(_TREE_CANDIDATES, len(s))
    _, cand = tree.query(np.c_[f, group.cpu().numpy() * apart], k=n_cand, workers=1)
    cand = torch.from_numpy(np.sort(cand.reshape(len(f), n_cand), axis=1)).to(feat.device)
    d = ((seed_feat[cand] - feat.unsqueeze(1)) ** 2).sum(-1)
    d = torch.where(seed_group[cand] == group.unsqueeze(1), d, torch.full_like(d, float("inf")))
    return cand.gather(1, torch.argmin(d, dim=1, keepdim=True)).squeeze(1)


class IHPool(nn.Module):
    """One IHPool stage.

    Parameters
    ----------
    channels : int
        Feature size of the nodes.
    ratio : float
        Region pooling: ``< 1`` keeps every ``ceil(1/ratio)``-th region (by fitness) as a
        seed; ``>= 1`` keeps ``int(ratio)`` region clusters per slide.
    patch_seeds : int
        Patch clusters per region cluster (at most).
    """

    def __init__(self, channels: int, ratio: float = 0.5, patch_seeds: int = 4) -> None:
        super().__init__()
        if ratio <= 0:
            raise ValueError(f"pool ratio must be > 0, got {ratio}")
        if patch_seeds < 1:
            raise ValueError(f"patch_seeds must be >= 1, got {patch_seeds}")
        self.channels, self.ratio, self.patch_seeds = channels, float(ratio), int(patch_seeds)
        self.w_region = nn.Parameter(torch.empty(channels))
        self.w_patch = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform like a linear layer with ``channels`` inputs."""
        bound = 1.0 / math.sqrt(self.channels)
        nn.init.uniform_(self.w_region, -bound, bound)
        nn.init.uniform_(self.w_patch, -bound, bound)

    def fitness(self, x: Tensor, level: Tensor) -> Tensor:
        """Fitness of every node: tanh of the normalised projection on its level's vector."""
        f_r = torch.tanh(x @ self.w_region / self.w_region.norm())
        f_p = torch.tanh(x @ self.w_patch / self.w_patch.norm())
        return torch.where(level == 1, f_r, torch.where(level == 2, f_p, torch.ones_like(f_r)))

    def forward(
        self,
        x: Tensor,
        level: Tensor,
        parent_index: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        num_graphs: int,
    ) -> PooledGraph:
        """Pool one stage (see the module docstring); returns a :class:`PooledGraph`."""
        device, n = x.device, x.size(0)
        fit = self.fitness(x, level)
        f_det = fit.detach()  # the clustering is discrete: no gradient through it

        thumbs = (level == 0).nonzero().view(-1)
        if thumbs.numel() != num_graphs or not torch.equal(
            torch.sort(batch[thumbs]).values, torch.arange(num_graphs, device=device)
        ):
            raise GraphError("every slide graph needs exactly one thumbnail node (level 0)")

        # ---- regions: seeds along the fitness order, nearest seed in (x, y, f) -------------
        reg = (level == 1).nonzero().view(-1)
        rb = batch[reg]
        r_order = _group_desc_order(f_det[reg], rb)
        r_counts = torch.bincount(rb, minlength=num_graphs)
        ratio = self.ratio
        seed_pos, k_reg = _seed_positions(
            r_counts, ratio if ratio < 1 else None, int(ratio) if ratio >= 1 else None
        )
        seeds = r_order[seed_pos]  # region-local indices, grouped by slide in slide order
        r_feat = torch.cat([pos[reg], f_det[reg].unsqueeze(1)], 1)
        r_cluster = _nearest_seed(r_feat, rb, r_feat[seeds], rb[seeds], k_reg)
        n_rc = seeds.numel()

        # ---- patches: follow the region cluster, then nearest of <= patch_seeds seeds ------
        pat = (level == 2).nonzero().view(-1)
        node2reg = torch.full((n,), -1, dtype=torch.long, device=device)
        node2reg[reg] = torch.arange(reg.numel(), device=device)
        preg = node2reg[parent_index[pat]]
        if pat.numel() and bool((preg < 0).any()):
            raise GraphError("every patch node (level 2) needs a region node (level 1) as parent")
        pg = r_cluster[preg]  # group of each patch = its region cluster
        p_order = _group_desc_order(f_det[pat], pg)
        p_counts = torch.bincount(pg, minlength=n_rc)
        pseed_pos, k_pat = _seed_positions(p_counts, None, self.patch_seeds)
        pseeds = p_order[pseed_pos]
        p_feat = torch.cat([pos[pat], f_det[pat].unsqueeze(1)], 1)
        p_cluster = _nearest_seed(p_feat, pg, p_feat[pseeds], pg[pseeds], k_pat)
        n_pc = pseeds.numel()

        # ---- new node ids: thumbnails (by slide), region clusters, patch clusters ----------
        n_new = num_graphs + n_rc + n_pc
        assign = torch.empty(n, dtype=torch.long, device=device)
        assign[thumbs] = batch[thumbs]
        assign[reg] = num_graphs + r_cluster
        assign[pat] = num_graphs + n_rc + p_cluster

        ar = torch.arange
        new_batch = torch.cat([ar(num_graphs, device=device), rb[seeds], batch[pat][pseeds]])
        new_level = torch.cat(
            [
                torch.zeros(num_graphs, dtype=torch.long, device=device),
                torch.ones(n_rc, dtype=torch.long, device=device),
                torch.full((n_pc,), 2, dtype=torch.long, device=device),
            ]
        )
        new_parent = torch.cat(
            [ar(num_graphs, device=device), rb[seeds], num_graphs + pg[pseeds]]
        )
        new_x = scatter(x * fit.unsqueeze(-1), assign, 0, dim_size=n_new, reduce="mean")
        new_pos = scatter(pos, assign, 0, dim_size=n_new, reduce="mean")

        # Contracted adjacency S^T (A + I) S, non-zero pattern, as a sorted unique edge list.
        ei = assign[edge_index]
        loops = ar(n_new, device=device)
        ei = torch.cat([ei, torch.stack([loops, loops])], 1)
        key = torch.unique(ei[0] * n_new + ei[1])
        new_ei = torch.stack([torch.div(key, n_new, rounding_mode="floor"), key % n_new])
        new_type = (new_level[new_ei[0]] != new_level[new_ei[1]]).long()
        return PooledGraph(
            x=new_x,
            level=new_level,
            parent_index=new_parent,
            pos=new_pos,
            edge_index=new_ei,
            edge_type=new_type,
            batch=new_batch,
            assignment=assign,
            fitness=fit,
        )

    def extra_repr(self) -> str:  # noqa: D102
        return f"{self.channels}, ratio={self.ratio}, patch_seeds={self.patch_seeds}"
