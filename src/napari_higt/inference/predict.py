"""Apply a trained classifier to feature files: slide predictions, per-node scores and the
predictions CSV.

``predict_slides(checkpoint, feature_paths)`` reads each slide's graph once, runs the model
and returns one :class:`Prediction` per slide (the graph included, for the viewer); with
``write_scores`` (default) the per-node scores are cached in the feature file's ``explain/``
group (`explain.store`).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import CheckpointError, FeatureError, UserFacingError
from napari_higt.explain.reduce import explain_forward

__all__ = ["Prediction", "predict_slides", "predictions_csv_text", "write_predictions_csv",
           "write_prediction_scores"]


@dataclass
class Prediction:
    """One slide's prediction; ``graph`` is the `HierarchicalGraph` the model saw."""

    slide_id: str
    pred: str
    pred_index: int
    probs: dict[str, float]
    path: str | None = None
    num_nodes: int = 0
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    graph: Any = field(default=None, repr=False)
    reductions: dict[str, str] = field(default_factory=dict, repr=False)
    #: The checkpoint's model card (`inference.card.ModelCard`), shown with the prediction.
    card: Any = field(default=None, repr=False)
    #: Out-of-domain warnings (`inference.domain`): assumed scale, features off the range.
    warnings: list[str] = field(default_factory=list)
    feature_distance: float | None = None


def _read_slide_graph(path: Path, extractor: str | None, in_dim: int, source: str) -> Any:
    """The slide's graph, checked against what the checkpoint was trained on."""
    from napari_higt.features.store import read_graph

    try:
        return read_graph(path, extractor=extractor, dim=in_dim)
    except FeatureError as exc:
        if path.is_file() and ("extractor" in str(exc) or "dim" in str(exc)):
            raise CheckpointError(
                f"the checkpoint {source} was trained on {in_dim}-dim '{extractor}' features, "
                f"which do not match this file: {exc}") from None
        raise


def predict_slides(
    checkpoint: str | os.PathLike | dict[str, Any],
    feature_paths: Sequence[str | os.PathLike],
    device: str | None = "auto",
    write_scores: bool = True,
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
    source: str | None = None,
    on_error: Callable[[Path, UserFacingError], Any] | None = None,
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
    on_error : ``on_error(path, error)`` for a file that cannot be predicted (unreadable,
        NaN features, another extractor ...); the other files go on. Without it the first
        such error is raised.

    Raises
    ------
    CheckpointError
        Unreadable checkpoint, or features from another extractor / of another width than
        the checkpoint was trained on (the message says which).
    FeatureError
        An unreadable or invalid feature file, or a model output that is not finite (no
        prediction is made from it).
    """
    import torch

    from napari_higt.devices import resolve_device
    from napari_higt.features.store import FeatureStore
    from napari_higt.inference.card import model_card
    from napari_higt.inference.checkpoint import load_checkpoint, model_from_checkpoint
    from napari_higt.inference.domain import domain_warnings

    dev = resolve_device(device)
    ck = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    try:
        model = model_from_checkpoint(ck).to(dev)
    except CheckpointError as exc:  # name the file: the model's own message cannot
        raise CheckpointError(f"{source or checkpoint}: {exc}") from None
    cfg = ck["config"]
    classes = [str(c) for c in cfg["class_names"]]
    in_dim = int(cfg.get("in_dim") or cfg["model"]["in_dim"])
    card = model_card(ck)
    src = source or (str(checkpoint) if not isinstance(checkpoint, dict) else "<in memory>")
    out: list[Prediction] = []
    total = len(feature_paths)
    for k, p in enumerate(feature_paths):
        if cancel is not None and cancel():
            break
        p = Path(p)
        try:
            graph = _read_slide_graph(p, cfg.get("extractor"), in_dim, src)
            o, scores, how = explain_forward(model, graph.to_pyg().to(dev), graph.level)
            prob = torch.softmax(o.logits.float(), -1)[0].cpu().numpy()
            if not np.isfinite(prob).all():
                raise FeatureError(f"{p}: the model's output for this slide is not finite "
                                   "(NaN); no prediction is reported. Check the checkpoint "
                                   "and the file's features")
            i = int(prob.argmax())
            warnings, distance = domain_warnings(card.domain, graph.x, graph.level,
                                                 ck["state_dict"], FeatureStore.read_attrs(p))
            pred = Prediction(graph.slide_id or p.stem, classes[i], i,
                              {c: float(v) for c, v in zip(classes, prob)}, str(p),
                              int(graph.num_nodes), scores, graph, how, card, warnings,
                              distance)
            if write_scores:
                write_prediction_scores(pred, cfg, src)
        except UserFacingError as exc:
            if on_error is None:
                raise
            on_error(p, exc)
        else:
            out.append(pred)
        if progress is not None:
            progress(k + 1, total)
    return out


def write_prediction_scores(pred: Prediction, config: dict[str, Any], source: str) -> Path:
    """Cache ``pred``'s node scores in its feature file's ``explain/`` group, atomically.

    Parameters
    ----------
    pred : a prediction of `predict_slides` (``path`` and ``graph`` set)
    config : the checkpoint's config (model name and class names are recorded)
    source : the checkpoint's name, recorded
    """
    from napari_higt.explain.store import write_node_scores

    g = pred.graph
    return write_node_scores(
        pred.path, pred.scores,
        attrs={"checkpoint": source, "model": config["model"].get("model", "higt"),
               "class_names": [str(c) for c in config["class_names"]], "pred": pred.pred,
               "probs": pred.probs, "num_nodes": int(g.num_nodes),
               "reductions": pred.reductions, "warnings": list(pred.warnings),
               **({"card": pred.card.to_dict()} if pred.card is not None else {})},
        level=g.level, coords=g.coords)


def predictions_csv_text(preds: Sequence[Prediction], class_names: Sequence[str]) -> str:
    """``slide_id,pred,prob_<class>...`` rows of ``preds`` as CSV text."""
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
