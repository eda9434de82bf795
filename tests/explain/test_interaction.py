"""The signed BI contributions are what they claim: the first-order effect of each
direction's messages on the predicted-class score, on the level that receives them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_higt.explain.interaction import forward_with_interactions
from napari_higt.explain.reduce import explain_forward
from napari_higt.levels import LEVEL_IDS


def _model(in_dim: int, **kw):
    from napari_higt.models import build_model

    torch.manual_seed(0)
    cfg = {"model": "higt", "in_dim": in_dim, "n_classes": 2, "hidden": 16, "n_blocks": 2,
           "block_layers": 1, **kw}
    return build_model(cfg).double().eval()


def _score_with_messages_scaled(model, data, r2p: float, p2r: float) -> float:
    """Predicted-class score (target - mean logit) with every block's region -> patch and
    patch -> region message multiplied by ``r2p`` / ``p2r`` (1 = the model as it is)."""
    hooks, rec = [], [{} for _ in model.blocks]
    for b, r in zip(model.blocks, rec):
        own = 0.5 if b.r2p_mode == "average" else 1.0
        hooks.append(b.register_forward_pre_hook(lambda m, a, r=r: r.update(regions=a[0])))
        hooks.append(b.patch_block.register_forward_hook(
            lambda m, a, o, r=r: r.update(p_hat=o[0])))

        def scale_patches(m, a, o, r=r, own=own):
            o.patches = own * r["p_hat"] + r2p * (o.patches - own * r["p_hat"])
            return o

        hooks.append(b.register_forward_hook(scale_patches))
        if b.region_block is not None:
            hooks.append(b.region_block.register_forward_pre_hook(
                lambda m, a, r=r: (r["regions"] + p2r * (a[0] - r["regions"]), *a[1:])))
    try:
        with torch.no_grad():
            lo = model(data).logits[0]
    finally:
        for h in hooks:
            h.remove()
    return float(lo[int(lo.argmax())] - lo.mean())


@pytest.mark.parametrize("r2p_mode", ["add", "average"])
def test_contributions_add_up_to_the_effect_of_the_messages(tcga_graph, r2p_mode):
    graph, _ = tcga_graph
    model = _model(graph.x.shape[1], r2p_mode=r2p_mode)
    data = graph.to_pyg()
    data.x = data.x.double()
    _, bi = forward_with_interactions(model, data)
    is_x10, is_x5 = graph.level == LEVEL_IDS["x10"], graph.level == LEVEL_IDS["x5"]
    r2p, p2r = bi["bi_region_to_patch"], bi["bi_patch_to_region"]
    # each direction lives on the level that receives it, and is missing elsewhere
    assert np.isfinite(r2p[is_x10]).all() and np.isnan(r2p[~is_x10]).all()
    assert np.isfinite(p2r[is_x5]).all() and np.isnan(p2r[~is_x5]).all()
    assert (r2p[is_x10] > 0).any() and (r2p[is_x10] < 0).any()  # signed

    eps = 1e-4
    f0 = _score_with_messages_scaled(model, data, 1.0, 1.0)
    d_r2p = (f0 - _score_with_messages_scaled(model, data, 1 - eps, 1.0)) / eps
    d_p2r = (f0 - _score_with_messages_scaled(model, data, 1.0, 1 - eps)) / eps
    assert np.nansum(r2p) == pytest.approx(d_r2p, rel=1e-3, abs=1e-9)
    assert np.nansum(p2r) == pytest.approx(d_p2r, rel=1e-3, abs=1e-9)
    # a wrong direction or level would not add up (the two effects differ)
    assert abs(d_r2p - d_p2r) > 1e-3 * max(abs(d_r2p), abs(d_p2r))


def test_models_without_interaction_give_none(tcga_graph):
    graph, _ = tcga_graph
    r2p_only = _model(graph.x.shape[1], interaction="r2p")
    _, scores, how = explain_forward(r2p_only, _double(graph), graph.level)
    assert "bi_region_to_patch" in scores and "bi_patch_to_region" not in scores
    assert how["bi_region_to_patch"] == "gradient x message, sum over blocks"
    from napari_higt.models import build_model

    abmil = build_model({"model": "abmil", "in_dim": graph.x.shape[1], "n_classes": 2})
    _, scores, _ = explain_forward(abmil.eval(), graph.to_pyg(), graph.level)
    assert not {"bi_region_to_patch", "bi_patch_to_region"} & set(scores)


def _double(graph):
    data = graph.to_pyg()
    data.x = data.x.double()
    return data
