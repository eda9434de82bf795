"""A model's named outputs -> one (N,) value per graph node for every score it has."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["node_scores"]


def node_scores(out: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(N,) per-node scores of one slide's ``HIGTOutput`` and how each was reduced.

    Scores the model did not produce (ablations, baselines) are left out; ``edge_attention``
    is per input edge, not per node (the inspector's "attends to" list).
    """
    import torch

    scores: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}

    def put(name: str, t: Any, desc: str) -> None:
        if t is None:
            return
        if isinstance(t, torch.Tensor):
            t = t.detach().float().cpu().numpy()
        scores[name] = np.asarray(t, dtype=np.float32).reshape(-1)
        how[name] = desc

    put("node_importance", out.node_importance, "as returned")
    if getattr(out, "ihpool_score", None) is not None and out.ihpool_score.numel():
        put("ihpool_score", out.ihpool_score[0], "stage 1")
    if getattr(out, "node_attention", None) is not None and out.node_attention.numel():
        put("node_attention", out.node_attention[0].mean(-1), "layer 1, mean over heads")
    ssa = getattr(out, "ssa_context_score", None)
    if ssa is not None and ssa.numel():
        put("ssa_context", ssa.mean(0).sum(0), "mean over blocks; region and patch tokens")
    for name in ("bi_region_to_patch", "bi_patch_to_region"):
        v = getattr(out, name, None)
        if v is not None and v.numel():
            put(name, v.mean(0), "mean over blocks")
    put("mil_attention", getattr(out, "mil_attention", None), "as returned")
    edges = getattr(out, "edge_attention", None)
    if edges:
        put("edge_attention", edges[0].mean(-1), "layer 1 per input edge, mean over heads")
    return scores, how
