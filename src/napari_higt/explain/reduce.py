"""A model's named outputs -> one (N,) value per graph node for every score it has."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_higt.explain.registry import score_spec
from napari_higt.levels import LEVEL_IDS

__all__ = ["node_scores", "explain_forward"]


def node_scores(out: Any, level: np.ndarray | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(N,) per-node scores of one slide's ``HIGTOutput`` and how each was reduced.

    Scores the model did not produce (ablations, baselines) are left out; ``edge_attention``
    is per input edge, not per node (the inspector's "attends to" list). The BI
    contributions need gradients, not just the output (`explain_forward`). With ``level`` (the
    graph's (N,) level ids) a score is NaN on the nodes of levels its registry entry does
    not name -- the model writes 0 there, which would read as a measured zero.
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
    put("mil_attention", getattr(out, "mil_attention", None))
    if level is not None:
        for name, v in scores.items():
            off = ~np.isin(np.asarray(level), [LEVEL_IDS[lv] for lv in score_spec(name).levels])
            scores[name] = np.where(off, np.float32(np.nan), v)
    edges = getattr(out, "edge_attention", None)
    if edges:
        put("edge_attention", edges[0].mean(-1))
    return scores, how


def explain_forward(model: Any, data: Any, level: np.ndarray | None = None
                    ) -> tuple[Any, dict[str, np.ndarray], dict[str, str]]:
    """Run ``model`` on one slide graph: its output and every score it explains itself with.

    `node_scores` of the output plus the signed BI contributions of
    `explain.interaction.forward_with_interactions` (one forward pass; gradients only for
    models with HIViT blocks). ``level``: as in `node_scores`.
    """
    from napari_higt.explain.interaction import forward_with_interactions

    out, bi = forward_with_interactions(model, data)
    scores, how = node_scores(out, level)
    for name, v in bi.items():
        scores[name] = v
        how[name] = score_spec(name).reduction
    return out, scores, how
