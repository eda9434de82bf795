"""Does a per-node score point at the evidence the model uses? Localisation, deletion, insertion.

The measures of ``benchmarks/bench_explain.py`` and of its tests, as pure functions:

* `localisation_auroc`: AUROC of the score for the known evidence units (e.g. the x10
  patches of the label-defining tissue) against every other unit;
* `deletion_curve` / `insertion_curve`: the probability of a class as the top-``k`` fraction
  of units by score are replaced by background (deletion), or as they are restored into a
  slide where everything is background (insertion), for ``k`` in `DEFAULT_FRACTIONS`;
  `curve_auc` is the area under such a curve over ``[0, max k]``, scaled to the mean
  probability. A faithful score deletes the evidence first (low deletion AUC) and restores
  it first (high insertion AUC); a random order (`ranking` of random scores) is the floor.

A unit is a node of the finest level (a patch); replacing it also changes every node above it
(its region, the thumbnail) in proportion to its share of that node's content
(`removal_weights`), so that removing all the patches of a region turns the region into its
background version and removing one of four turns it a quarter of the way. The model side
(`model_removal_fn`) blends each node's features with its background features by that
weight and runs the model on all the masks at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["DEFAULT_FRACTIONS", "localisation_auroc", "ranking", "top_fraction_masks",
           "removal_weights", "deletion_curve", "insertion_curve", "deletion_insertion_curves",
           "curve_auc",
           "model_removal_fn"]

#: Fractions of units removed (deletion) or restored (insertion): 0, 5, ..., 50 %.
DEFAULT_FRACTIONS = np.round(np.linspace(0.0, 0.5, 11), 4)

ProbFn = Callable[[np.ndarray], np.ndarray]


def localisation_auroc(scores: np.ndarray, evidence: np.ndarray) -> float:
    """AUROC of ``scores`` for ``evidence`` units vs the rest (ties count one half).

    Parameters
    ----------
    scores : (n,) float
        Higher = more important. NaN scores rank lowest.
    evidence : (n,) bool
        The units that define the label.

    Returns
    -------
    float
        In [0, 1] (0.5 = chance); NaN when ``evidence`` is all True or all False.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    e = np.asarray(evidence, dtype=bool).reshape(-1)
    if s.shape != e.shape:
        raise ValueError(f"{len(s)} scores for {len(e)} evidence flags")
    n_pos, n_neg = int(e.sum()), int((~e).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    s = np.where(np.isfinite(s), s, -np.inf)
    r = _average_ranks(s)  # ties count one half
    return float((r[e].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s``, tied values sharing the mean of their ranks."""
    ranks = np.empty(len(s))
    ranks[np.argsort(s, kind="mergesort")] = np.arange(1, len(s) + 1)
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    return (np.bincount(inv, weights=ranks) / counts)[inv]


def ranking(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit indices, highest score first; ties in random (seeded) order, NaN last."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = np.where(np.isfinite(s), s, -np.inf)
    tie = np.random.default_rng(seed).random(len(s))
    return np.lexsort((tie, -s))


def top_fraction_masks(order: np.ndarray, fractions: np.ndarray = DEFAULT_FRACTIONS
                       ) -> np.ndarray:
    """(K, n) bool: row ``k`` marks the first ``round(fractions[k] * n)`` units of ``order``."""
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    n = len(order)
    masks = np.zeros((len(fractions), n), dtype=bool)
    for k, f in enumerate(np.asarray(fractions, dtype=np.float64)):
        masks[k, order[: int(round(f * n))]] = True
    return masks


def removal_weights(removed: np.ndarray, units: np.ndarray, parent_index: np.ndarray,
                    mass: np.ndarray | None = None) -> np.ndarray:
    """Share of every node's content that the removed units take away.

    Parameters
    ----------
    removed : (K, n_units) bool
        Which units are replaced, per mask.
    units : (n_units,) int
        Node index of every unit (the patch nodes).
    parent_index : (N,) int
        Parent node of every node (the root points at itself), as in a slide graph.
    mass : (n_units,) float, optional
        How much each unit changes when replaced (default 1 each). A unit of mass 0 (already
        background) changes nothing anywhere.

    Returns
    -------
    (K, N) float in [0, 1]
        For node ``v``: the removed mass under ``v`` (``v`` itself and the units below it)
        over all unit mass under ``v``; 0 where no mass lies under ``v``.
    """
    removed = np.atleast_2d(np.asarray(removed, dtype=bool))
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    parent = np.asarray(parent_index, dtype=np.int64).reshape(-1)
    n = len(parent)
    if removed.shape[1] != len(units):
        raise ValueError(f"masks over {removed.shape[1]} units, but {len(units)} units given")
    m = np.ones(len(units)) if mass is None else np.asarray(mass, dtype=np.float64).reshape(-1)
    rows, cols = [], []
    node, live = units.copy(), np.ones(len(units), dtype=bool)
    for _ in range(n):  # walk every unit up to the root
        idx = np.nonzero(live)[0]
        if not len(idx):
            break
        rows.append(idx)
        cols.append(node[idx])
        up = parent[node]
        live &= up != node
        node = up
    r, c = np.concatenate(rows), np.concatenate(cols)  # unit r lies under node c
    total = np.bincount(c, weights=m[r], minlength=n)
    taken = np.zeros((n, len(removed)))
    np.add.at(taken, c, (removed[:, r] * m[r]).T)
    taken = taken.T
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(total > 0, taken / np.where(total > 0, total, 1.0), 0.0)
    return np.clip(w, 0.0, 1.0)


def deletion_curve(prob_fn: ProbFn, order: np.ndarray,
                   fractions: np.ndarray = DEFAULT_FRACTIONS) -> np.ndarray:
    """Probability after removing the top ``fractions`` of ``order`` (``prob_fn(removed)``)."""
    return np.asarray(prob_fn(top_fraction_masks(order, fractions)), dtype=np.float64)


def insertion_curve(prob_fn: ProbFn, order: np.ndarray,
                    fractions: np.ndarray = DEFAULT_FRACTIONS) -> np.ndarray:
    """Probability when only the top ``fractions`` of ``order`` are kept, the rest removed."""
    return np.asarray(prob_fn(~top_fraction_masks(order, fractions)), dtype=np.float64)


def deletion_insertion_curves(prob_fn: ProbFn, orders: list[np.ndarray],
                              fractions: np.ndarray = DEFAULT_FRACTIONS
                              ) -> tuple[np.ndarray, np.ndarray]:
    """(n_orders, K) deletion and insertion curves of several orders, in one ``prob_fn`` call
    (the model then sees every perturbed slide in as few batches as possible)."""
    masks = np.stack([top_fraction_masks(o, fractions) for o in orders])
    n_orders, k, n = masks.shape
    flat = masks.reshape(-1, n)
    p = np.asarray(prob_fn(np.concatenate([flat, ~flat])), dtype=np.float64)
    return p[: n_orders * k].reshape(n_orders, k), p[n_orders * k:].reshape(n_orders, k)


def curve_auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under ``values`` over ``fractions``, divided by the fraction range (so
    a constant curve ``p`` has area ``p``)."""
    f = np.asarray(fractions, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    span = f[-1] - f[0]
    if span <= 0:
        raise ValueError("fractions must span a positive range")
    return float(np.sum((v[1:] + v[:-1]) * np.diff(f)) / 2 / span)


def model_removal_fn(model: Any, data: Any, x_background: Any, units: np.ndarray,
                     target: int, *, mass: np.ndarray | None = None,
                     batch_size: int = 32) -> ProbFn:
    """``prob_fn`` for `deletion_curve` / `insertion_curve` of one slide graph.

    Parameters
    ----------
    model : nn.Module
        ``model(batch).logits``; run in eval mode without gradients.
    data : torch_geometric.data.Data
        One slide graph (``x``, ``parent_index`` and the model's fields).
    x_background : Tensor (N, C)
        Every node's features with its content replaced by background (same node order).
    units : (n_units,) int
        Node indices of the ranked units (the patch nodes).
    target : int
        Class whose probability is returned.
    mass, batch_size
        See `removal_weights`; masks per forward pass.

    Returns
    -------
    callable
        ``removed (K, n_units) bool -> (K,) probability of target``.
    """
    import torch
    from torch_geometric.data import Batch

    x = data.x.detach()
    delta = x_background.detach().to(x) - x
    parent = data.parent_index.cpu().numpy()
    batches: dict[int, Any] = {}  # copies of the slide, collated once per batch size

    def prob_fn(removed: np.ndarray) -> np.ndarray:
        w = torch.from_numpy(removal_weights(removed, units, parent, mass)).to(x)
        out = []
        with torch.no_grad():
            for s in range(0, len(w), batch_size):
                wk = w[s:s + batch_size]
                if len(wk) not in batches:
                    batches[len(wk)] = Batch.from_data_list([data] * len(wk))
                b = batches[len(wk)]
                b.x = (x + wk.unsqueeze(-1) * delta).reshape(-1, x.size(1))
                logits = model(b).logits.float()
                out.append(torch.softmax(logits, -1)[:, target])
        return torch.cat(out).cpu().numpy().astype(np.float64)

    return prob_fn
