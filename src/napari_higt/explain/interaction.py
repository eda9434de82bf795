"""Signed contributions of HIGT's bidirectional interaction (BI), per direction and node.

In every HIViT block (``models/hivit.py``) each x10 patch token receives a message from its
x5 region, ``p <- p_hat + SE(R)R[parent]`` (region -> patch), and, in all but the last block,
each region receives one from its patches, ``r <- r + SE(P_bar)P_bar`` (patch -> region).
How large a message is says nothing about what it does to the decision; its first-order
effect on the predicted-class score does:

    contribution = gradient of the score w.r.t. the receiving token . the message

with the score the target logit minus the mean logit (as in `explain.attribution`), summed
over blocks. Positive: the message pushes the token towards the predicted class; negative:
away from it. Each direction lives on the level that *receives* it (region -> patch on x10
patches, patch -> region on x5 regions). A token HIViT sees may stand for several original
nodes (IHPool merges them); its contribution is split evenly among them, so the node values
add up to the token's.

The tokens are read with forward hooks on the HIViT blocks, so the model code stays as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["forward_with_interactions", "interaction_contributions"]


def _hooks(blocks: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Forward hooks recording each block's input regions, ``p_hat``, ``r_hat``, outputs."""
    rec: list[dict[str, Any]] = [{} for _ in blocks]
    handles = []
    for b, r in zip(blocks, rec):
        handles.append(b.register_forward_pre_hook(
            lambda m, args, r=r: r.__setitem__("regions", args[0])))
        handles.append(b.patch_block.register_forward_hook(
            lambda m, args, out, r=r: r.__setitem__("p_hat", out[0])))
        if getattr(b, "region_block", None) is not None:
            handles.append(b.region_block.register_forward_pre_hook(
                lambda m, args, r=r: r.__setitem__("r_hat", args[0])))
        handles.append(b.register_forward_hook(
            lambda m, args, out, r=r: r.__setitem__("p_new", out.patches)))
    return rec, handles


def _token_rows(comp: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row among its level's HIViT tokens, size of its pooled cluster) of every node.

    HIViT orders the tokens of a level as the final pooled nodes of that level, by index
    (``HIGT.forward``); the pooled node of an original node is ``comp``.
    """
    n_final = int(comp.max()) + 1 if len(comp) else 0
    final_level = np.full(n_final, -1)
    final_level[comp] = level
    row = np.zeros(n_final, dtype=np.int64)
    for lv in np.unique(final_level):
        sel = final_level == lv
        row[sel] = np.arange(int(sel.sum()))
    size = np.bincount(comp, minlength=n_final)
    return row[comp], size[comp]


def forward_with_interactions(model: Any, data: Any, target: int | None = None
                              ) -> tuple[Any, dict[str, np.ndarray]]:
    """One forward pass of ``model`` on one slide graph, and its BI contributions.

    Returns
    -------
    (output, scores)
        The model's output (detached) and, for a model with HIViT blocks, the (N,) signed
        contributions ``bi_region_to_patch`` (x10 nodes) and ``bi_patch_to_region`` (x5
        nodes; absent with ``interaction="r2p"``), NaN on every other node. Models without
        blocks give ``{}`` (and run without gradients).
    """
    import torch

    blocks = list(getattr(model, "blocks", None) or [])
    if not blocks:
        with torch.no_grad():
            return model(data), {}
    rec, handles = _hooks(blocks)
    try:
        with torch.enable_grad():
            # Gradients are read on HIViT tokens only: the GNN stages keep nothing for them.
            out = model(data, gnn_grad=False)
            logits = out.logits[0].float()
            t = int(logits.argmax()) if target is None else int(target)
            score = logits[t] - logits.mean()
            return out.detach(), _contributions(blocks, rec, score, out, data)
    finally:
        for h in handles:
            h.remove()


def _contributions(blocks: list[Any], rec: list[dict[str, Any]], score: Any,
                   out: Any, data: Any) -> dict[str, np.ndarray]:
    import torch

    wanted: list[tuple[str, int, Any, Any]] = []  # (direction, block, token, message)
    for i, (b, r) in enumerate(zip(blocks, rec)):
        own = 0.5 if b.r2p_mode == "average" else 1.0  # p_new = own * p_hat + message
        wanted.append(("bi_region_to_patch", i, r["p_new"], r["p_new"] - own * r["p_hat"]))
        if getattr(b, "se_patch", None) is not None and "r_hat" in r:
            wanted.append(("bi_patch_to_region", i, r["r_hat"], r["r_hat"] - r["regions"]))
    grads = torch.autograd.grad(score, [w[2] for w in wanted], allow_unused=True)
    per_token: dict[str, Any] = {}
    for (name, _, token, msg), g in zip(wanted, grads):
        c = (g * msg).sum(-1).detach() if g is not None else torch.zeros(len(token))
        per_token[name] = per_token.get(name, 0) + c.double().cpu()
    level = data.level.detach().cpu().numpy()
    pa = getattr(out, "pool_assignment", None)
    comp = pa[-1].cpu().numpy() if pa is not None and pa.numel() else np.arange(len(level))
    row, size = _token_rows(comp, level)
    result = {}
    for name, lv in (("bi_region_to_patch", 2), ("bi_patch_to_region", 1)):
        if name not in per_token:
            continue
        v = np.full(len(level), np.nan)
        on = level == lv
        v[on] = per_token[name].numpy()[row[on]] / size[on]
        result[name] = v.astype(np.float32)
    return result


def interaction_contributions(model: Any, data: Any, target: int | None = None
                              ) -> dict[str, np.ndarray]:
    """The BI contributions of `forward_with_interactions` alone."""
    return forward_with_interactions(model, data, target)[1]
