"""One slide through the whole pipeline: features (when missing), graph, model, node scores.

The Qt-free core of the inference widget and of ``napari-higt demo``: progress goes to a
callback, a cancel callback is polled between steps, and the result holds everything the
viewer paints (prediction, graph, per-node scores), also cached in the slide's feature file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import Cancelled, UserFacingError

__all__ = ["InferenceResult", "run_inference", "load_cached_result",
           "checkpoint_extractor", "cached_features"]


@dataclass
class InferenceResult:
    """What one inference run produced for one slide."""

    slide_id: str
    feature_path: Path
    pred: str
    probs: dict[str, float]
    graph: Any  # napari_higt.graph.HierarchicalGraph
    scores: dict[str, np.ndarray]
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The model card of the checkpoint (`inference.card.ModelCard`; unknown provenance when
    #: the checkpoint, or the cache, has none), shown with the prediction.
    card: Any = None
    #: Out-of-domain warnings, shown next to the prediction (`inference.domain`).
    warnings: list[str] = field(default_factory=list)


def checkpoint_extractor(ck: dict) -> tuple[str, int]:
    """(extractor name, feature dim) a loaded checkpoint was trained on."""
    cfg = ck.get("config", {})
    name = cfg.get("extractor") or "handcrafted"
    return name, int(cfg.get("in_dim") or cfg["model"]["in_dim"])


def cached_features(slide_path: str | os.PathLike, features_dir: str | os.PathLike,
                    extractor: str) -> Path | None:
    """The slide's feature file in ``features_dir`` if it holds ``extractor`` features of
    this very slide file (same content hash), else None.

    Lets a checkpoint trained on features from a model file (``cnn`` weights, an ``hmgdm``
    encoder) run on slides preprocessed earlier without that file at hand.
    """
    from napari_higt.features.provenance import check_same_slide
    from napari_higt.features.store import FeatureStore

    path = Path(features_dir) / f"{Path(slide_path).stem}.h5"
    attrs = FeatureStore.read_attrs(path)
    if not attrs or attrs.get("extractor") != extractor or "source_hash" not in attrs:
        return None
    try:
        check_same_slide(path, attrs, slide_path)
    except UserFacingError:
        return None
    return path


def run_inference(
    slide_path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    features_dir: str | os.PathLike,
    mpp: float | None = None,
    device: str = "auto",
    extractor_config: dict | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
    tissue_threshold: float = 0.25,
) -> InferenceResult:
    """Predict one slide and compute its node scores.

    Parameters
    ----------
    slide_path : the slide file.
    checkpoint : a classifier checkpoint (``napari-higt train`` output).
    features_dir : where the slide's feature file lives or is written (reused when it is
        up to date for the checkpoint's extractor).
    mpp : level-0 µm per px for slides whose file records no scale.
    device : "auto", "cpu", "cuda", ...; a CUDA out-of-memory falls back to the CPU and the
        result's ``notes`` say so.
    extractor_config : settings of the checkpoint's extractor (e.g. a weights file).
    progress : ``progress(stage, done, total)`` with stage "features" or "model".
    cancel : polled between batches and steps; True raises `napari_higt.errors.Cancelled`.
    tissue_threshold : tiles with more tissue than this fraction become nodes (when the
        features are computed here).

    Raises
    ------
    UserFacingError
        Bad slide, unknown scale, no tissue, unreadable checkpoint, features that do not fit
        the checkpoint.
    napari_higt.errors.Cancelled
    """
    from napari_higt.features.base import MODEL_FILE_OPTION
    from napari_higt.features.pipeline import preprocess_slide
    from napari_higt.inference.checkpoint import load_checkpoint
    from napari_higt.inference.predict import predict_slides

    cancel = cancel or (lambda: False)
    report = progress or (lambda *a: None)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    ck = load_checkpoint(checkpoint)
    extractor, _ = checkpoint_extractor(ck)
    option = MODEL_FILE_OPTION.get(extractor)
    cached = (cached_features(slide_path, features_dir, extractor)
              if option and not (extractor_config or {}).get(option) else None)
    if cached is not None:
        fpath = cached
        notes.append(f"used the {extractor} features already in {cached.name}; give the "
                     f"extractor's {option} file to recompute them")
    else:
        fpath = preprocess_slide(
            slide_path, features_dir, extractor, mpp=mpp,
            extractor_config=extractor_config or {}, tissue_threshold=tissue_threshold,
            progress=lambda d, t: report("features", d, t), cancel=cancel,
        )
    timings["features"] = time.perf_counter() - t0
    if cancel():
        raise Cancelled("cancelled before running the model")
    t1 = time.perf_counter()
    from napari_higt.devices import resolve_device

    used = str(resolve_device(device))
    report("model", 0, 1)  # the stage starts now: a progress bar times it from here
    try:
        preds = predict_slides(ck, [fpath], device=device, source=str(checkpoint),
                               progress=lambda d, t: report("model", d, t), cancel=cancel)
    except RuntimeError as exc:  # torch's CUDA OOM is a RuntimeError subclass
        if "out of memory" not in str(exc).lower():
            raise
        import torch

        torch.cuda.empty_cache()
        notes.append(f"the GPU ran out of memory ({exc}); ran on the CPU instead")
        used = "cpu"
        preds = predict_slides(ck, [fpath], device="cpu", source=str(checkpoint),
                               progress=lambda d, t: report("model", d, t), cancel=cancel)
    if not preds:
        raise Cancelled("cancelled before running the model")
    timings["model"] = time.perf_counter() - t1
    p = preds[0]
    return InferenceResult(p.slide_id, Path(fpath), p.pred, p.probs, p.graph, p.scores,
                           device=used, timings=timings, notes=notes, card=p.card,
                           warnings=list(p.warnings))


def load_cached_result(feature_path: str | os.PathLike,
                       slide_path: str | os.PathLike | None = None, force: bool = False,
                       override: str | None = "--force") -> InferenceResult | None:
    """The result cached in a feature file by an earlier run, or None when there is none.

    Parameters
    ----------
    feature_path : the slide's feature file
    slide_path : the slide the result is for: the file must record this slide (id and
        content hash, `napari_higt.features.provenance.check_same_slide`)
    force : use a file of another slide anyway (the result's notes say so)
    override : how the user asks for ``force``, named in the refusal (None in the viewer)

    Raises
    ------
    UserFacingError
        The file belongs to another slide, is unreadable, or its cached scores do not fit
        its graph (the file was rewritten).
    """
    from napari_higt.explain.store import read_node_scores
    from napari_higt.features.provenance import check_same_slide
    from napari_higt.features.store import FeatureStore, read_graph

    feature_path = Path(feature_path)
    if not feature_path.is_file():
        return None
    cached = read_node_scores(feature_path)
    if cached is None:
        return None
    scores, attrs = cached
    note = None
    if slide_path is not None:
        note = check_same_slide(feature_path, FeatureStore.read_attrs(feature_path) or {},
                                slide_path, force=force, override=override)
    graph = read_graph(feature_path)
    level = scores.pop("level", None)
    scores.pop("coords", None)
    if level is not None and (len(level) != graph.num_nodes
                              or not np.array_equal(level, graph.level)):
        raise UserFacingError(
            f"the scores cached in {feature_path.name} belong to another version of its "
            "features; run the inference again")
    probs = attrs.get("probs") or {}
    notes = [f"cached from {attrs.get('checkpoint', 'an earlier run')}"] + ([note] if note else [])
    from napari_higt.explain.registry import score_spec

    # A score cached by an older version under the same name but reduced another way has
    # another meaning: it is left out rather than shown under the registry's description.
    how = attrs.get("reductions") if isinstance(attrs.get("reductions"), dict) else {}
    stale = sorted(k for k in scores if k in how and how[k] != score_spec(k).reduction)
    for k in stale:
        del scores[k]
    if stale:
        notes.append(f"{', '.join(stale)} cached by an older version mean something else now "
                     "and are not shown; run the inference again to compute them")
    from napari_higt.inference.card import ModelCard

    card = attrs.get("card")
    card = ModelCard.from_dict(card if isinstance(card, dict) else None,
                               {"class_names": attrs.get("class_names")})
    warnings = attrs.get("warnings")
    return InferenceResult(graph.slide_id or feature_path.stem, feature_path,
                           str(attrs.get("pred", "")), dict(probs), graph, scores, notes=notes,
                           card=card, warnings=[str(w) for w in warnings]
                           if isinstance(warnings, list) else [])
