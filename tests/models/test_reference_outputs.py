"""HIGT outputs pinned to a stored reference (``data/reference_outputs.pt``).

Speed and memory work on the model must not change what it computes. The fixture holds a
small graph made by the project's graph builder (one slide of a few hundred nodes, plus a
two-slide batch), the weights of seeded HIGT models (paper preset, the ablations and the
official preset) and, made with the code of the day the fixture was written:

* eval mode: the logits and every explanation tensor of :class:`HIGTOutput`;
* train mode (dropout on, fixed seed): the logits and the gradient of every parameter for a
  fixed loss.

The weights are stored, not re-drawn from a seed, so a change in parameter initialisation
order does not move the reference; the graph is stored too, so the test pins the model only.
Everything is float64 so reassociated sums (fused or chunked kernels) stay far below the
tolerance while any change of the computation does not. Regenerate only on purpose, when
the model is meant to compute something else::

    python tests/models/test_reference_outputs.py --regenerate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from napari_higt.graph import HierarchicalGraph
from napari_higt.models import HIGTOutput, build_model, predict

FIXTURE = Path(__file__).parent / "data" / "reference_outputs.npz"
IN_DIM, N_CLASSES = 8, 3
BASE = {"model": "higt", "in_dim": IN_DIM, "n_classes": N_CLASSES, "hidden": 8}
# Every key that differs between the cases is explicit, so a change of a default elsewhere
# does not silently change what a case means.
CASES: dict[str, dict] = {
    "paper": {"preset": "paper", "conv": "raconv+", "self_loops": True,
              "attention": "separable", "interaction": "bi", "fusion": True},
    "paper_heads2": {"preset": "paper", "conv": "raconv+", "self_loops": True, "heads": 2},
    "raconv": {"preset": "paper", "conv": "raconv", "self_loops": True},
    "full": {"preset": "paper", "self_loops": True, "attention": "full"},
    "r2p": {"preset": "paper", "self_loops": True, "interaction": "r2p"},
    "nofusion": {"preset": "paper", "self_loops": True, "fusion": False},
    "official": {"preset": "official", "conv": "raconv", "self_loops": False},
}
# The cases whose eval outputs are also pinned on a two-slide batch (the batch vector path).
BATCH_CASES = ("paper", "official")
TOL = {"rtol": 1e-9, "atol": 1e-11}


def reference_graph(seed: int = 0, side: int = 8) -> Data:
    """A slide on a ``side`` x ``side`` region grid, some regions and patches absent."""
    rng = np.random.default_rng(seed)
    s10 = 256
    g5 = np.array([(i, j) for i in range(side) for j in range(side)])
    g5 = g5[rng.random(len(g5)) < 0.85]
    sub = np.array([(0, 0), (1, 0), (0, 1), (1, 1)])
    g10 = (2 * g5[:, None, :] + sub[None]).reshape(-1, 2)
    g10 = g10[rng.random(len(g10)) < 0.8]
    feats = {"thumbnail": rng.normal(size=(1, IN_DIM)), "x5": rng.normal(size=(len(g5), IN_DIM)),
             "x10": rng.normal(size=(len(g10), IN_DIM))}
    coords = {"thumbnail": np.zeros((1, 2)), "x5": g5 * 2 * s10, "x10": g10 * s10}
    g = HierarchicalGraph.from_arrays(coords, feats, patch_size={"x10": s10})
    return g.to_pyg()


def _as64(data: Data) -> Data:
    data = data.clone()
    data.x, data.pos = data.x.double(), data.pos.double()
    return data


def _output_tensors(out: HIGTOutput) -> dict[str, object]:
    res: dict[str, object] = {}
    for name in ("logits", "node_importance", "node_attention", "ihpool_score",
                 "pool_assignment", "ssa_context_score", "bi_region_to_patch",
                 "bi_patch_to_region", "mil_attention", "edge_attention"):
        v = getattr(out, name)
        if isinstance(v, list):
            v = [t.detach().clone() for t in v]
        elif isinstance(v, torch.Tensor):
            v = v.detach().clone()
        res[name] = v
    return res


def _train_step(model: torch.nn.Module, data: Data) -> tuple[torch.Tensor, dict]:
    """Logits and parameter gradients of a fixed loss, dropout on with a fixed seed."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1234)
    out = model(data)
    y = torch.arange(out.logits.size(0)) % N_CLASSES
    # The auxiliary term reaches the RAConv coefficients, which the logits reach only
    # through the messages.
    loss = F.cross_entropy(out.logits, y) + 0.1 * sum(a.square().mean() for a in
                                                      out.edge_attention)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return out.logits.detach().clone(), grads


_FIELDS = ("x", "level", "parent_index", "pos", "edge_index", "edge_type", "coords")


def _graph_lists() -> dict[str, list[Data]]:
    """One slide (fed as a plain ``Data``) and two smaller ones (fed as one ``Batch``)."""
    return {"single": [_as64(reference_graph(0))],
            "batch": [_as64(reference_graph(1, 5)), _as64(reference_graph(2, 4))]}


def _inputs(lists: dict[str, list[Data]]) -> dict[str, Data]:
    return {"single": lists["single"][0], "batch": Batch.from_data_list(lists["batch"])}


def generate() -> dict:
    """Build the fixture with the current code (see the module docstring)."""
    lists = _graph_lists()
    graphs = _inputs(lists)
    fixture: dict = {"graphs": {k: [{f: getattr(g, f) for f in _FIELDS} for g in gs]
                                for k, gs in lists.items()},
                     "cases": {}}
    for name, cfg in CASES.items():
        torch.manual_seed(0)
        model = build_model({**BASE, **cfg}).double()
        # float32 values stored: upcasting them back is exact, and halves the file.
        model.load_state_dict({k: v.float().double() if v.is_floating_point() else v
                               for k, v in model.state_dict().items()})
        entry = {"config": json.dumps({**BASE, **cfg}),
                 "state_dict": {k: v.float() if v.is_floating_point() else v.clone()
                                for k, v in model.state_dict().items()}}
        model.eval()
        with torch.no_grad():
            entry["eval"] = {k: _output_tensors(model(g)) for k, g in graphs.items()
                             if k == "single" or name in BATCH_CASES}
        logits, grads = _train_step(model, graphs["single"])
        entry["train"] = {"logits": logits, "grads": grads}
        fixture["cases"][name] = entry
    return fixture


def _flatten(obj: object, key: str, out: dict[str, np.ndarray]) -> None:
    """Nested dicts/lists of tensors -> flat ``{"a/b/0": array}`` (``#none``/``#len`` marks)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{key}/{k}" if key else k, out)
    elif isinstance(obj, list):
        out[f"{key}/#len"] = np.array(len(obj))
        for i, v in enumerate(obj):
            _flatten(v, f"{key}/{i}", out)
    elif obj is None:
        out[f"{key}/#none"] = np.zeros(0)
    elif isinstance(obj, str):
        out[key] = np.array(obj)
    else:
        out[key] = obj.numpy()


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    root: dict = {}
    for k, v in flat.items():
        *path, leaf = k.split("/")
        node = root
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = v

    def build(node: object) -> object:
        if not isinstance(node, dict):
            return str(node) if node.dtype.kind == "U" else torch.from_numpy(node)
        if "#none" in node:
            return None
        if "#len" in node:
            return [build(node[str(i)]) for i in range(int(node["#len"]))]
        return {k: build(v) for k, v in node.items()}

    return build(root)


def _load() -> dict:
    if not FIXTURE.is_file():
        pytest.fail(f"missing {FIXTURE}; regenerate it with python {__file__} --regenerate")
    with np.load(FIXTURE, allow_pickle=False) as z:
        return _unflatten({k: z[k] for k in z.files})


@pytest.fixture(scope="module")
def reference() -> dict:
    return _load()


def _stored_graphs(ref: dict) -> dict[str, Data]:
    return _inputs({k: [Data(**f) for f in gs] for k, gs in ref["graphs"].items()})


def _model(entry: dict) -> torch.nn.Module:
    model = build_model(json.loads(entry["config"])).double()
    model.load_state_dict({k: v.double() if v.is_floating_point() else v
                           for k, v in entry["state_dict"].items()})
    return model


def _assert_same(got: object, want: object, what: str) -> None:
    if want is None:
        assert got is None, what
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), what
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_same(a, b, f"{what}[{i}]")
    elif want.dtype.is_floating_point:
        assert got.shape == want.shape, what
        torch.testing.assert_close(got.detach().double(), want, **TOL, msg=what)
    else:
        assert torch.equal(got, want), what


def test_graph_builder_still_gives_the_stored_graph(reference: dict) -> None:
    """The fixture's graph is what the builder makes (else: a builder change, not a model one)."""
    g = _as64(reference_graph(0))
    for f, want in reference["graphs"]["single"][0].items():
        assert torch.equal(getattr(g, f), want), f


@pytest.mark.parametrize("case", list(CASES))
def test_eval_outputs_match_reference(reference: dict, case: str) -> None:
    entry = reference["cases"][case]
    model = _model(entry).eval()
    graphs = _stored_graphs(reference)
    for k, outputs in entry["eval"].items():
        with torch.no_grad():
            out = model(graphs[k])
        for name, want in outputs.items():
            _assert_same(getattr(out, name), want, f"{case}/{k}/{name}")


@pytest.mark.parametrize("case", list(CASES))
def test_train_gradients_match_reference(reference: dict, case: str) -> None:
    entry = reference["cases"][case]
    model = _model(entry)
    logits, grads = _train_step(model, _stored_graphs(reference)["single"])
    _assert_same(logits, entry["train"]["logits"], f"{case}/train/logits")
    assert set(grads) == set(entry["train"]["grads"]), case
    for n, want in entry["train"]["grads"].items():
        torch.testing.assert_close(grads[n], want, rtol=1e-7, atol=1e-10, msg=f"{case}/{n}")


def test_gnn_checkpoint_gives_the_same_gradients(reference: dict) -> None:
    """``gnn_checkpoint`` recomputes the GNN stages in backward: same logits, same grads."""
    entry = reference["cases"]["paper"]
    model = _model({**entry, "config": json.dumps({**json.loads(entry["config"]),
                                                  "gnn_checkpoint": True})})
    assert model.gnn_checkpoint
    logits, grads = _train_step(model, _stored_graphs(reference)["single"])
    _assert_same(logits, entry["train"]["logits"], "checkpoint/train/logits")
    for n, want in entry["train"]["grads"].items():
        torch.testing.assert_close(grads[n], want, rtol=1e-7, atol=1e-10, msg=f"checkpoint/{n}")


@pytest.mark.parametrize("case", ["paper", "official"])
def test_lean_inference_gives_the_eval_reference(reference: dict, case: str) -> None:
    """``models.predict`` (inference mode, eval, mode restored) and ``gnn_grad=False`` (the
    explanations' forward: gradients for HIViT only) compute the eval outputs."""
    entry = reference["cases"][case]
    model = _model(entry).train()
    graphs = _stored_graphs(reference)
    for k, outputs in entry["eval"].items():
        out = predict(model, graphs[k])
        assert model.training
        for name, want in outputs.items():
            _assert_same(getattr(out, name), want, f"{case}/{k}/predict/{name}")
    model.eval()
    out = model(graphs["single"], gnn_grad=False)
    _assert_same(out.logits, entry["eval"]["single"]["logits"], f"{case}/gnn_grad")
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.convs.parameters())
    assert any(p.grad is not None for p in model.blocks.parameters())


def test_float32_eval_close_to_reference(reference: dict) -> None:
    """The everyday dtype: float32 weights and features give the float64 reference closely."""
    entry = reference["cases"]["paper"]
    model = _model(entry).float().eval()
    g = _stored_graphs(reference)["single"].clone()
    g.x, g.pos = g.x.float(), g.pos.float()
    with torch.no_grad():
        out = model(g)
    want = entry["eval"]["single"]
    torch.testing.assert_close(out.logits.double(), want["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.node_importance.double(), want["node_importance"],
                               rtol=1e-3, atol=1e-4)
    assert torch.equal(out.pool_assignment, want["pool_assignment"])


if __name__ == "__main__":
    if "--regenerate" not in sys.argv:
        sys.exit(f"usage: python {__file__} --regenerate  (overwrites {FIXTURE})")
    torch.set_num_threads(1)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {}
    _flatten(generate(), "", flat)
    tmp = FIXTURE.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **flat)
    tmp.replace(FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1024:.0f} KiB)")
