"""H-MGDM dynamic entity masking: random nodes, BFS region, inverse BFS."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_entity_mask"]


def sample_entity_mask(
    edge_index: torch.Tensor,
    ptr: torch.Tensor | np.ndarray,
    rng: np.random.Generator,
    ratio_max: float = 1.2,
    probs: tuple[float, float, float] = (0.5, 0.25, 0.25),
    return_types: bool = False,
):
    """Sample the dynamic entity mask of a batch of graphs (spec section 3).

    Parameters
    ----------
    edge_index : (2, E) batched (PyG) edges
    ptr : (B + 1,) node offsets of the graphs (``batch.ptr``)
    rng : numpy Generator
    ratio_max : r ~ U(0, ratio_max) clipped to [0, 1]
    probs : probabilities of the mask types random / BFS / inverse BFS

    Returns
    -------
    mask : (N,) bool tensor, True = masked (target), False = visible (condition).
    types : list of str per graph (only with ``return_types=True``).

    Every graph with n >= 2 entities gets k = clip(round(r n), 1, n - 1) masked entities,
    so at least one masked and one visible (REC); a 1-entity graph is masked entirely.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    ptr = np.asarray(ptr.cpu() if isinstance(ptr, torch.Tensor) else ptr, dtype=np.int64)
    n_total = int(ptr[-1])
    ei = edge_index.detach().cpu().numpy()
    adj = csr_matrix((np.ones(ei.shape[1], np.int8), (ei[0], ei[1])), shape=(n_total, n_total))
    mask = np.zeros(n_total, bool)
    types = []
    p = np.asarray(probs, np.float64)
    p = p / p.sum()

    def bfs_region(lo: int, n: int, size: int) -> np.ndarray:
        """`size` nodes (local indices) grown by BFS from random seeds inside graph lo."""
        taken = np.zeros(n, bool)
        out: list[int] = []
        while len(out) < size:
            free = np.flatnonzero(~taken)
            seed = int(rng.choice(free)) + lo
            order = breadth_first_order(adj, seed, directed=False, return_predecessors=False)
            for v in order - lo:
                if not taken[v]:
                    taken[v] = True
                    out.append(int(v))
                    if len(out) == size:
                        break
        return np.asarray(out, np.int64)

    for g in range(len(ptr) - 1):
        lo, hi = int(ptr[g]), int(ptr[g + 1])
        n = hi - lo
        kind = ("random", "bfs", "inverse_bfs")[int(rng.choice(3, p=p))]
        types.append(kind)
        if n == 0:
            continue
        if n == 1:
            mask[lo] = True
            continue
        r = min(float(rng.uniform(0.0, ratio_max)), 1.0)
        k = int(np.clip(round(r * n), 1, n - 1))
        local = np.zeros(n, bool)
        if kind == "random":
            local[rng.choice(n, k, replace=False)] = True
        elif kind == "bfs":
            local[bfs_region(lo, n, k)] = True
        else:  # inverse BFS: everything except a BFS-grown visible region of n - k nodes
            local[:] = True
            local[bfs_region(lo, n, n - k)] = False
        mask[lo:hi] = local
    out = torch.from_numpy(mask).to(edge_index.device)
    return (out, types) if return_types else out
