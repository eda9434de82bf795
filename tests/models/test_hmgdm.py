"""H-MGDM model: dynamic masking, stage-1/stage-2 shapes, losses, embedding, explanations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from napari_higt.graph.entities import entity_graph
from napari_higt.models.hmgdm import (
    HMGDM,
    HMGDMConfig,
    reconstruction_error,
    sample_entity_mask,
    sigmoid_beta_schedule,
)

TINY = dict(hidden=32, latent=16, enc_layers=2, heads=2, dec_depth=1)


@pytest.fixture(scope="module")
def graphs(tissue_rgb):
    tiles = [tissue_rgb[y:y + 128, x:x + 128] for y in (256, 512) for x in (256, 512)]
    out = [entity_graph(t, n_segments=40, compactness=20) for t in tiles]
    for g in out:
        del g.label_image
    return out


def _batch(graphs):
    return Batch.from_data_list([g.clone() for g in graphs])


def _connected(nodes, edge_index):
    nodes = set(int(v) for v in nodes)
    if not nodes:
        return True
    adj = {v: set() for v in nodes}
    for a, b in edge_index.t().tolist():
        if a in nodes and b in nodes:
            adj[a].add(b)
    seen, todo = set(), [next(iter(nodes))]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(adj[v] - seen)
    return seen == nodes


def test_masks_are_complementary_with_at_least_one_of_each(graphs):
    b = _batch(graphs)
    seen_types = set()
    for seed in range(30):
        mask, types = sample_entity_mask(b.edge_index, b.ptr, np.random.default_rng(seed),
                                         return_types=True)
        seen_types |= set(types)
        assert mask.dtype == torch.bool and mask.shape == (b.num_nodes,)
        visible = ~mask
        assert not (mask & visible).any() and (mask | visible).all()
        for g, kind in enumerate(types):
            lo, hi = int(b.ptr[g]), int(b.ptr[g + 1])
            m = mask[lo:hi]
            assert 1 <= int(m.sum()) <= hi - lo - 1
            if kind == "bfs" and _connected(range(lo, hi), b.edge_index):
                assert _connected(np.flatnonzero(m.numpy()) + lo, b.edge_index)
            if kind == "inverse_bfs" and _connected(range(lo, hi), b.edge_index):
                assert _connected(np.flatnonzero((~m).numpy()) + lo, b.edge_index)
    assert seen_types == {"random", "bfs", "inverse_bfs"}


def test_encoder_sees_only_the_visible_condition(graphs):
    torch.manual_seed(0)
    model = HMGDM(HMGDMConfig(**TINY))
    model.fit_normalizer(graphs)
    b = _batch(graphs)
    mask = sample_entity_mask(b.edge_index, b.ptr, np.random.default_rng(3))
    seen = {}
    hook = model.encoder.register_forward_hook(
        lambda mod, args, out: seen.update(x=args[0], ei=args[2]))
    out = model(b, mask=mask)
    hook.remove()
    vis = ~mask
    assert seen["x"].shape[0] == int(vis.sum())
    both_visible = (vis[b.edge_index[0]] & vis[b.edge_index[1]]).sum()
    assert seen["ei"].shape[1] == int(both_visible)
    assert torch.equal(out.mask, mask)
    # the target is exactly the masked set: error defined there, NaN on the condition
    assert torch.isnan(out.node_error[vis]).all() and torch.isfinite(out.node_error[mask]).all()
    for name in ("loss", "node_loss", "pos_loss", "kl_loss"):
        assert torch.isfinite(getattr(out, name))
    assert float(out.kl_loss.detach()) >= 0 and float(out.edge_loss.detach()) == 0.0
    assert out.t.shape == (b.num_graphs,) and int(out.t.max()) < model.cfg.timesteps


def test_schedule_matches_spec():
    betas = sigmoid_beta_schedule(1000, 1e-7, 2e-3)
    assert betas.shape == (1000,) and (betas[1:] > betas[:-1]).all()
    assert 1e-7 <= float(betas[0]) < 1e-5 and 1.9e-3 < float(betas[-1]) <= 2e-3


@pytest.mark.parametrize("conv,edges", [("gin", False), ("gatv2", True)])
def test_one_step_reduces_the_loss_on_a_fixed_batch(graphs, conv, edges):
    torch.manual_seed(0)
    model = HMGDM(HMGDMConfig(**TINY, conv=conv, edge_features=edges))
    model.fit_normalizer(graphs)
    b = _batch(graphs)
    mask = sample_entity_mask(b.edge_index, b.ptr, np.random.default_rng(0))
    t = torch.tensor([100, 400, 700, 999])

    def loss():
        return model(b, mask=mask, t=t, generator=torch.Generator().manual_seed(1)).loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())
    if edges:
        assert float(model(b, mask=mask, t=t).edge_loss.detach()) > 0


def test_embedding_dim_and_invariances(graphs):
    torch.manual_seed(0)
    model = HMGDM(HMGDMConfig(**TINY)).eval()
    model.fit_normalizer(graphs)
    b = _batch(graphs)
    emb = model.embed(b)
    assert emb.shape == (len(graphs), 2 * TINY["latent"]) == (len(graphs), model.embed_dim)
    # one graph alone gives the same embedding as inside a batch
    assert torch.allclose(model.embed(graphs[1]), emb[1:2], atol=1e-5)
    # relabelling the entities changes nothing
    g = graphs[0]
    perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    gp = g.clone()
    gp.x, gp.pos, gp.edge_index = g.x[perm], g.pos[perm], inv[g.edge_index]
    assert torch.allclose(model.embed(gp), emb[0:1], atol=1e-5)


def test_reconstruction_error_for_the_viewer(graphs):
    torch.manual_seed(0)
    model = HMGDM(HMGDMConfig(**TINY))
    model.fit_normalizer(graphs)
    g = graphs[0]
    r = reconstruction_error(model, g, n_rounds=6, seed=0)
    n = g.num_nodes
    assert isinstance(r["error"], np.ndarray) and r["error"].shape == (n,)
    assert r["mask"].dtype == bool and r["mask"].shape == (n,)
    assert 1 <= r["mask"].sum() <= n - 1
    assert np.isnan(r["mask_error"][~r["mask"]]).all()
    assert np.isfinite(r["mask_error"][r["mask"]]).all()
    assert np.isfinite(r["error"]).mean() > 0.9 and np.nanmin(r["error"]) >= 0
    again = reconstruction_error(model, g, n_rounds=6, seed=0)
    assert np.array_equal(again["mask"], r["mask"])
    np.testing.assert_allclose(again["error"], r["error"], rtol=1e-5)
    assert model.training  # restored


def test_bad_config():
    with pytest.raises(ValueError, match="conv"):
        HMGDM(HMGDMConfig(conv="gcn"))
    with pytest.raises(ValueError, match="unknown"):
        HMGDMConfig.from_dict({"hidden": 8, "depth": 3})
