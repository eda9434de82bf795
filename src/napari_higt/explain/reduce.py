"""A model's named outputs -> one (N,) value per graph node for every score it has."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_higt.explain.registry import score_spec

__all__ = ["node_scores"]


def node_scores(out: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(N,) per-node scores of one slide's ``HIGTOutput`` and how each was reduced.

    Scores the model did not produce (ablations, baselines) are left out; ``edge_attention``
    is per input edge, not per node (the inspector's "attends to" list).
    """
    import torch

    scores: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}

    def put(name: str, t: Any) -> None:
        if t is None:
            return
        if isinstance(t, torch.Tensor):
            t = t.detach().float().cpu().numpy()
        scores[name] = np.asarray(t, dtype=np.float32).reshape(-1)
        how[name] = score_spec(name).reduction

    def given(name: str) -> Any:
        v = getattr(out, name, None)
        return v if v is not None and v.numel() else None

    put("node_importance", out.node_importance)
    if (v := given("ihpool_score")) is not None:
        put("ihpool_score", v[0])
    if (v := given("node_attention")) is not None:
        put("node_attention", v[0].mean(-1))
    if (v := given("ssa_context_score")) is not None:
        put("ssa_context", v.mean(0).sum(0))
    for name in ("bi_region_to_patch", "bi_patch_to_region"):
        if (v := given(name)) is not None:
            put(name, v.mean(0))
    put("mil_attention", getattr(out, "mil_attention", None))
    edges = getattr(out, "edge_attention", None)
    if edges:
        put("edge_attention", edges[0].mean(-1))
    return scores, how
