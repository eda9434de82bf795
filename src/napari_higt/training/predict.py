"""Apply a trained checkpoint to feature files: slide predictions and per-node scores.

``predict_slides(checkpoint, feature_paths)`` builds each slide's graph, runs the model and
returns one :class:`Prediction` per slide; with ``write_scores`` (default) the per-node
scores go into the feature file itself, group ``explain/`` (``DESIGN.md``), so the viewer
can paint them without rerunning the model:

    explain/                      attrs: checkpoint, model, class_names (JSON), pred,
                                         probs (JSON), num_nodes, reductions (JSON)
      level          (N,) int8    node level (0 thumbnail, 1 x5, 2 x10), graph node order
      coords         (N, 2) int64 level-0 px top-left
      node_importance, ihpool_score, node_attention, ssa_context,
      bi_region_to_patch, bi_patch_to_region, mil_attention   (N,) float32 each, when the
                                  model has them (names as in ``explain.maps.SCORE_INFO``)
      edge_attention (E,) float32 RAConv(+) layer-1 coefficient of every input edge (edge
                                  order of ``features.store.read_graph``)

The node order is the one of ``features.store.read_graph`` on the same file (it may hold
more x5 nodes than the file when regions were made up for orphan patches).

The feature file is updated atomically: it is copied to a temporary file beside it, the
copy is opened in append mode, ``explain/`` is replaced, and the copy is renamed over the
original with ``os.replace`` -- a reader never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import CheckpointError, FeatureError
from napari_higt.features.store import atomic_feature_file

__all__ = ["Prediction", "predict_slides", "write_predictions_csv", "node_scores",
           "write_node_scores", "read_node_scores", "EXPLAIN_GROUP"]

EXPLAIN_GROUP = "explain"


@dataclass
class Prediction:
    """One slide's prediction."""

    slide_id: str
    pred: str
    pred_index: int
    probs: dict[str, float]
    path: str | None = None
    num_nodes: int = 0
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def node_scores(out: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(N,) per-node scores of one slide's ``HIGTOutput`` and how each was reduced."""
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
    if edges:  # per edge of the input graph, for the inspector's "attends to" list
        put("edge_attention", edges[0].mean(-1), "layer 1 per input edge, mean over heads")
    return scores, how


def write_node_scores(path: str | os.PathLike, scores: dict[str, np.ndarray],
                      attrs: dict[str, Any] | None = None,
                      level: np.ndarray | None = None,
                      coords: np.ndarray | None = None) -> Path:
    """Replace the ``explain/`` group of feature file ``path`` atomically (see module doc).

    Raises
    ------
    FeatureError
        The file is missing or not HDF5, or the write failed (the original is untouched).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"feature file not found: {path}")
    with atomic_feature_file(path, f"node scores into {path}") as tmp:
        shutil.copy2(path, tmp)
        with h5py.File(tmp, "a") as h5:
            if EXPLAIN_GROUP in h5:
                del h5[EXPLAIN_GROUP]
            g = h5.create_group(EXPLAIN_GROUP)
            for k, v in (attrs or {}).items():
                g.attrs[k] = v if isinstance(v, (str, int, float, bool, np.number)) \
                    else json.dumps(v, default=str)
            if level is not None:
                g.create_dataset("level", data=np.asarray(level, dtype=np.int8))
            if coords is not None:
                g.create_dataset("coords", data=np.asarray(coords, dtype=np.int64))
            for name, v in scores.items():
                g.create_dataset(name, data=np.asarray(v, dtype=np.float32))
    return path


def read_node_scores(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(scores, attrs)`` of the ``explain/`` group, or None when the file has none."""
    import h5py

    with h5py.File(path, "r") as h5:
        if EXPLAIN_GROUP not in h5:
            return None
        g = h5[EXPLAIN_GROUP]
        scores = {k: np.asarray(g[k][()]) for k in g.keys()}
        attrs = {}
        for k, v in g.attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            attrs[k] = v.item() if isinstance(v, np.generic) else v
        return scores, attrs


def predict_slides(
    checkpoint: str | os.PathLike | dict[str, Any],
    feature_paths: Sequence[str | os.PathLike],
    device: str | None = "auto",
    write_scores: bool = True,
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
    source: str | None = None,
) -> list[Prediction]:
    """Predict every feature file with the checkpoint's model.

    Parameters
    ----------
    checkpoint : path of a ``best.pt``/``last.pt`` (or a loaded checkpoint dict)
    feature_paths : ``.h5`` feature files (``napari-higt preprocess`` output)
    device : "auto" (cuda > mps > cpu), "cpu", "cuda:0", ...
    write_scores : store the per-node scores in each file's ``explain/`` group
    progress : ``progress(done, total)`` after each slide
    cancel : ``cancel() -> bool`` polled before each slide; the slides done so far are
        returned
    source : name of the checkpoint recorded in ``explain/`` (default: its path)

    Raises
    ------
    CheckpointError
        Unreadable checkpoint, or features from another extractor / of another width than
        the checkpoint was trained on (the message says which).
    """
    import torch

    from napari_higt.devices import resolve_device
    from napari_higt.training.checkpoint import load_checkpoint, model_from_checkpoint
    from napari_higt.training.dataset import load_graph

    dev = resolve_device(device)
    ck = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    model = model_from_checkpoint(ck).to(dev)
    cfg = ck["config"]
    classes = [str(c) for c in cfg["class_names"]]
    in_dim = int(cfg.get("in_dim") or cfg["model"]["in_dim"])
    extractor = cfg.get("extractor")
    src = source or (str(checkpoint) if not isinstance(checkpoint, dict) else "<in memory>")
    out: list[Prediction] = []
    total = len(feature_paths)
    for k, p in enumerate(feature_paths):
        if cancel is not None and cancel():
            break
        p = Path(p)
        try:
            g = load_graph(p, extractor=extractor, dim=in_dim)
        except FeatureError as exc:
            if p.is_file() and ("extractor" in str(exc) or "dim" in str(exc)):
                raise CheckpointError(
                    f"the checkpoint {src} was trained on {in_dim}-dim '{extractor}' features, "
                    f"which do not match this file: {exc}") from None
            raise
        with torch.no_grad():
            o = model(g.to(dev))
        prob = torch.softmax(o.logits.float(), -1)[0].cpu().numpy()
        i = int(prob.argmax())
        scores, how = node_scores(o)
        pred = Prediction(g.slide_id, classes[i], i,
                          {c: float(v) for c, v in zip(classes, prob)}, str(p),
                          int(g.num_nodes), scores)
        if write_scores:
            write_node_scores(
                p, scores,
                attrs={"checkpoint": src, "model": cfg["model"].get("model", "higt"),
                       "class_names": classes, "pred": classes[i],
                       "probs": pred.probs, "num_nodes": int(g.num_nodes), "reductions": how},
                level=g.level.cpu().numpy(), coords=g.coords.cpu().numpy())
        out.append(pred)
        if progress is not None:
            progress(k + 1, total)
    return out


def predictions_csv_text(preds: Sequence[Prediction], class_names: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["slide_id", "pred"] + [f"prob_{c}" for c in class_names])
    for p in preds:
        w.writerow([p.slide_id, p.pred] + [f"{p.probs[c]:.6f}" for c in class_names])
    return buf.getvalue()


def write_predictions_csv(path: str | os.PathLike, preds: Sequence[Prediction],
                          class_names: Sequence[str] | None = None) -> Path:
    """``slide_id,pred,prob_<class>...`` written atomically."""
    from napari_higt.io import atomic_write_text

    if class_names is None:
        class_names = list(preds[0].probs) if preds else []
    return atomic_write_text(path, predictions_csv_text(preds, class_names))
