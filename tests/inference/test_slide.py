"""One slide through the pipeline: the graph is read once and is the one the model saw."""

from __future__ import annotations

import numpy as np

from napari_higt.explain.store import read_node_scores
from napari_higt.inference import load_cached_result, predict_slides, run_inference


def test_run_inference_reads_the_graph_once(tcga_path, small_checkpoint, tmp_path,
                                            monkeypatch):
    from napari_higt.features import store

    ckpt, _ = small_checkpoint
    real = store.read_graph
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "read_graph", counted)
    res = run_inference(tcga_path, ckpt, tmp_path / "features", mpp=1.0, device="cpu")
    assert len(calls) == 1
    assert res.graph.num_nodes == len(res.scores["node_importance"])
    scores, attrs = read_node_scores(res.feature_path)
    assert np.array_equal(scores["level"], res.graph.level)
    assert np.array_equal(scores["coords"], res.graph.coords)
    assert attrs["pred"] == res.pred and set(attrs["probs"]) == {"normal", "tumour"}
    monkeypatch.undo()
    cached = load_cached_result(res.feature_path)
    assert cached.pred == res.pred and cached.graph.num_nodes == res.graph.num_nodes
    for name, v in res.scores.items():
        assert np.allclose(cached.scores[name], v, equal_nan=True), name  # NaN: no such score


def test_predict_slides_returns_graph_and_stops_on_cancel(small_checkpoint):
    ckpt, feats = small_checkpoint
    files = sorted(feats.glob("*.h5"))
    preds = predict_slides(ckpt, files, device="cpu", write_scores=False)
    assert [p.graph.num_nodes for p in preds] == [p.num_nodes for p in preds]
    assert all(abs(sum(p.probs.values()) - 1) < 1e-5 for p in preds)
    assert predict_slides(ckpt, files, device="cpu", write_scores=False,
                          cancel=lambda: True) == []
