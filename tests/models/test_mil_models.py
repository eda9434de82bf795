"""CLAM-SB, DS-MIL, TransMIL (on bags and on slide graphs) and H2-MIL (on slide graphs):
shapes, attention on the input nodes, gradients to every parameter, a planted-signal task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_slide_graph, permute_within_levels
from test_models import IN_DIM, _planted_pairs
from torch_geometric.data import Batch

from napari_higt.errors import GraphError
from napari_higt.models.bag import BagBatch
from napari_higt.models.clam import CLAMSB
from napari_higt.models.dsmil import DSMIL
from napari_higt.models.h2mil import H2MIL
from napari_higt.models.transmil import TransMIL

DIM = IN_DIM
BAG_MODELS = {
    "clam_sb": lambda c: CLAMSB(DIM, c, hidden=32, k_sample=4),
    "dsmil": lambda c: DSMIL(DIM, c, hidden=32, query=16),
    "transmil": lambda c: TransMIL(DIM, c, hidden=32, heads=4),
}


def _loss(out, y: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(out.logits, y)
    return loss + out.aux_loss if getattr(out, "aux_loss", None) is not None else loss


def _bags(sizes, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, DIM, generator=g) for n in sizes]


def _planted(n_bags: int, seed: int):
    """Bags of 8-30 noise instances; a positive bag holds 1-3 instances shifted by +2.5 in
    their first four features. Returns the bags, labels and the planted rows per bag."""
    rng = np.random.default_rng(seed)
    bags, y, planted = [], [], []
    for i in range(n_bags):
        x = torch.from_numpy(rng.normal(0, 1, (int(rng.integers(8, 31)), DIM)).astype(np.float32))
        rows = rng.choice(len(x), int(rng.integers(1, 4)), replace=False) if i % 2 else []
        x[rows, :4] += 2.5
        bags.append(x)
        y.append(i % 2)
        planted.append(list(rows))
    return bags, torch.tensor(y), planted


@pytest.mark.parametrize("name", sorted(BAG_MODELS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_bag_shapes_and_attention_per_bag(name: str, n_classes: int) -> None:
    torch.manual_seed(0)
    model = BAG_MODELS[name](n_classes).eval()
    sizes = [5, 1, 17, 9]
    data = BagBatch.from_bags(_bags(sizes), torch.tensor([0, 1, 1, 0]))
    out = model(data)
    assert out.logits.shape == (4, n_classes) and torch.isfinite(out.logits).all()
    n = sum(sizes)
    assert out.mil_attention.shape == (n,) and out.node_importance.shape == (n,)
    assert (out.node_importance >= 0).all() and (out.node_importance <= 1).all()
    sums = torch.zeros(4).index_add_(0, data.batch, out.mil_attention)
    torch.testing.assert_close(sums, torch.ones(4))
    assert out.aux_loss is None  # eval mode: no instance loss


@pytest.mark.parametrize("name", sorted(BAG_MODELS))
def test_batched_bags_match_single_bags(name: str) -> None:
    """Batching is bookkeeping only: each bag gives the logits and attention it gives alone
    (TransMIL: the shared padded grid and its masks change nothing)."""
    torch.manual_seed(1)
    model = BAG_MODELS[name](2).double().eval()
    bags = [b.double() for b in _bags([3, 11, 26, 1], seed=2)]
    out = model(BagBatch.from_bags(bags))
    start = 0
    for i, b in enumerate(bags):
        one = model(BagBatch.from_bags([b]))
        torch.testing.assert_close(one.logits[0], out.logits[i], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(one.mil_attention, out.mil_attention[start:start + len(b)],
                                   rtol=1e-9, atol=1e-9)
        start += len(b)


@pytest.mark.parametrize("name", ["clam_sb", "dsmil"])
def test_attention_moves_with_the_instances(name: str) -> None:
    """Permutation-invariant MIL: shuffled rows give the same logits and the attention
    follows its instance (TransMIL orders tokens on a grid, so it is not invariant)."""
    torch.manual_seed(2)
    model = BAG_MODELS[name](2).double().eval()
    x = _bags([23], seed=3)[0].double()
    perm = torch.randperm(23)
    a, b = model(BagBatch.from_bags([x])), model(BagBatch.from_bags([x[perm]]))
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.mil_attention[perm], b.mil_attention)


@pytest.mark.parametrize("name", sorted(BAG_MODELS))
def test_on_slide_graphs_the_patches_are_the_instances(name: str) -> None:
    graphs = [make_slide_graph(3, 4, DIM, seed=s) for s in (1, 2)]
    data = Batch.from_data_list(graphs)
    torch.manual_seed(0)
    model = BAG_MODELS[name](2).eval()
    out = model(data)
    patch = data.level == 2
    assert out.mil_attention.shape == (data.x.size(0),)
    assert (out.mil_attention[~patch] == 0).all() and (out.node_importance[~patch] == 0).all()
    # The same as the bag of each slide's patch features.
    bags = [g.x[g.level == 2] for g in graphs]
    ref = model(BagBatch.from_bags(bags))
    torch.testing.assert_close(out.logits, ref.logits)
    torch.testing.assert_close(out.mil_attention[patch], ref.mil_attention)


@pytest.mark.parametrize("name", sorted(BAG_MODELS))
def test_bag_model_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = BAG_MODELS[name](3).train()
    data = BagBatch.from_bags(_bags([12, 9, 20, 15], seed=4), torch.tensor([0, 1, 2, 1]))
    out = model(data)
    if name == "clam_sb":
        assert out.aux_loss is not None and out.aux_loss > 0
    _loss(out, data.y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def _auc(y: torch.Tensor, p: torch.Tensor) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y.numpy(), p.numpy()))


# How many times the uniform share the planted instances must get of a positive bag's
# attention. TransMIL's class-token attention localises weakly (its prediction does not have
# to go through it: the second layer mixes every token); the gated attention of CLAM and the
# critical-instance attention of DS-MIL concentrate on the evidence.
ATTENTION_GAIN = {"clam_sb": 3.0, "dsmil": 2.0, "transmil": 1.3}


@pytest.mark.parametrize("name", sorted(BAG_MODELS))
def test_bag_models_learn_a_planted_instance(name: str) -> None:
    """Trained on 48 bags, a held-out set is separated and the attention of its positive
    bags sits on the planted instances (ATTENTION_GAIN times the uniform share)."""
    train, y, _ = _planted(48, seed=10)
    test, yt, rows = _planted(40, seed=11)
    torch.manual_seed(0)
    model = BAG_MODELS[name](2)
    model.standardize.fit(train)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(60):
        for s in range(0, 48, 8):
            opt.zero_grad()
            _loss(model.train()(BagBatch.from_bags(train[s:s + 8], y[s:s + 8])),
                  y[s:s + 8]).backward()
            opt.step()
    data = BagBatch.from_bags(test)
    with torch.no_grad():
        out = model.eval()(data)
    assert _auc(yt, out.logits.softmax(-1)[:, 1]) > 0.9
    ptr = np.cumsum([0] + [len(b) for b in test])
    shares = [float(out.mil_attention[ptr[i]:ptr[i + 1]][rows[i]].sum())
              for i in range(len(test)) if rows[i]]
    uniform = np.mean([len(rows[i]) / len(test[i]) for i in range(len(test)) if rows[i]])
    assert np.mean(shares) > ATTENTION_GAIN[name] * uniform, (np.mean(shares), uniform)


# ------------------------------------------------------------------------------ H2-MIL
def _h2mil(**kw) -> H2MIL:
    torch.manual_seed(0)
    return H2MIL(DIM, kw.pop("n_classes", 3), hidden=kw.pop("hidden", 16), **kw)


@pytest.mark.parametrize("conv", ["raconv", "raconv+"])
def test_h2mil_shapes_and_node_order(conv: str) -> None:
    data = Batch.from_data_list([make_slide_graph(r, c, DIM, seed=s)
                                 for s, (r, c) in enumerate([(2, 3), (4, 5), (3, 3)])])
    out = _h2mil(conv=conv).eval()(data)
    n = data.x.size(0)
    assert out.logits.shape == (3, 3)
    assert out.node_importance.shape == (n,)
    assert out.node_attention.shape == (2, n, 1) and out.ihpool_score.shape == (2, n)
    assert out.pool_assignment.shape == (2, n)
    assert (out.node_importance >= 0).all() and (out.node_importance <= 1).all()
    # Explanations follow the input node order.
    g = make_slide_graph(5, 5, DIM, seed=3, dtype=torch.float64)
    gp, perm = permute_within_levels(g, seed=7)
    model = _h2mil(conv=conv).double().eval()
    a, b = model(g), model(gp)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(a.node_importance[perm], b.node_importance, atol=1e-8, rtol=0)
    torch.testing.assert_close(a.ihpool_score[:, perm], b.ihpool_score, atol=1e-8, rtol=0)


@pytest.mark.parametrize("self_loops", [True, False])
def test_h2mil_gradients_reach_every_parameter(self_loops: bool) -> None:
    data = Batch.from_data_list([make_slide_graph(4, 4, DIM, seed=s) for s in (5, 6)])
    model = _h2mil(self_loops=self_loops).train()
    F.cross_entropy(model(data).logits, torch.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_h2mil_needs_the_graph() -> None:
    with pytest.raises(GraphError, match="lacks the field"):
        _h2mil()(BagBatch.from_bags(_bags([5])))


def test_h2mil_learns_a_planted_patch() -> None:
    """Slide pairs that differ in one patch: trained, H2-MIL separates them and ranks that
    patch in the top 10% of its slide's patches."""
    data, y, planted = _planted_pairs()
    # pool_ratios=[1000]: one stage that keeps every node (see test_models.HIGT_PLANTED).
    model = _h2mil(n_classes=2, pool_ratios=[1000], gnn_dropout=0.0, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(data).logits, y).backward()
        opt.step()
    with torch.no_grad():
        out = model.eval()(data)
    assert (out.logits.argmax(1) == y).all()
    for i, p in enumerate(planted):
        sl = slice(int(data.ptr[2 * i + 1]), int(data.ptr[2 * i + 2]))
        imp, level = out.node_importance[sl], data.level[sl]
        patch_imp = imp[level == 2]
        assert (patch_imp > imp[p]).sum().item() < 0.10 * patch_imp.numel(), (i, p)


# ------------------------------------------------------------------------------ TransMIL passes
def test_transmil_pass_groups_cover_every_side_once() -> None:
    from napari_higt.models.transmil import pass_groups

    sides = [3, 1, 7, 7, 2, 14, 3, 5]
    assert pass_groups(sides, 0.0) == [(s, s) for s in sorted(set(sides))]
    assert pass_groups(sides, float("inf")) == [(1, 14)]
    assert pass_groups([], 100.0) == []
    for ov in (10.0, 100.0, 250.0, 1000.0):
        groups = pass_groups(sides, ov)
        assert groups[0][0] == 1 and groups[-1][1] == 14
        assert all(a[1] < b[0] for a, b in zip(groups, groups[1:]))  # disjoint, in order
        covered = [s for s in set(sides) if any(lo <= s <= hi for lo, hi in groups)]
        assert sorted(covered) == sorted(set(sides))


@pytest.mark.parametrize("train", [False, True])
def test_transmil_padded_grids_change_nothing(train: bool) -> None:
    """One pass for the whole batch (padded grids, masked tokens) gives what one pass per grid
    size gives: logits, attention and (in training, without dropout) the gradients."""
    torch.manual_seed(3)
    model = TransMIL(DIM, 3, hidden=32, heads=4, dropout=0.0).double().train(train)
    bags = [b.double() for b in _bags([1, 2, 5, 9, 10, 26, 40, 3], seed=5)]
    data = BagBatch.from_bags(bags, torch.tensor([0, 1, 2, 1, 0, 2, 1, 0]))
    outs, grads = [], []
    for ov in (0.0, float("inf")):
        model.pass_overhead = ov
        model.zero_grad()
        out = model(data)
        F.cross_entropy(out.logits, data.y).backward()
        outs.append(out)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0].logits, outs[1].logits, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(outs[0].mil_attention, outs[1].mil_attention, rtol=1e-9,
                               atol=1e-9)
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-8, atol=1e-10, msg=n)
