"""The model card of a trained fold (`inference.card`): written into its checkpoints.

`fold_card` describes one (seed, fold) model from what training knows -- the slides and
labels of its training part, their extractor and scale (the feature files' attributes), the
protocol and metrics of the fold, and the out-of-domain threshold calibrated on the feature
distances of its training slides (`inference.domain`). `write_fold_card` puts it into the
fold's ``best.pt`` and ``last.pt``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PROTOCOL_TEXT", "fold_card", "write_fold_card", "slide_distances", "training_scale"]

PROTOCOL_TEXT = {
    "inner-val": "epoch chosen on a grouped inner validation split of the training part; "
                 "metrics on the held-out evaluation fold, scored once",
    "eval-fold": "epoch chosen on the evaluation fold itself, so its metrics are optimistic",
}


def slide_distances(dataset: Any, idx: Sequence[int], mean: np.ndarray, std: np.ndarray
                    ) -> list[float]:
    """Feature distance (`inference.domain.feature_distance`) of each slide ``idx``."""
    from napari_higt.inference.domain import feature_distance

    out = []
    for i in idx:
        g = dataset[int(i)]
        x = g.x.detach().cpu().numpy()
        level = g.level.cpu().numpy() if getattr(g, "level", None) is not None \
            else np.ones(len(x), dtype=np.int64)  # a bag: every row is a patch
        out.append(feature_distance(x, level, mean, std))
    return out


def training_scale(paths: list[Path]) -> str:
    """µm per pixel of the training feature files and how it was known."""
    from napari_higt.features.store import FeatureStore
    from napari_higt.inference.domain import MPP_SOURCES

    mpps, sources = [], Counter()
    for p in paths:
        a = FeatureStore.read_attrs(p) or {}
        if isinstance(a.get("mpp"), (int, float)):
            mpps.append(float(a["mpp"]))
        sources[MPP_SOURCES.get(a.get("mpp_source"), "source not recorded")] += 1
    if not mpps:
        return "unknown (the feature files record no scale)"
    lo, hi = min(mpps), max(mpps)
    span = f"{lo:.3g} µm/px" if np.isclose(lo, hi) else f"{lo:.3g}-{hi:.3g} µm/px"
    return f"{span} at level 0 ({', '.join(f'{n} {s}' for s, n in sources.items())})"


def fold_card(dataset: Any, train_idx: np.ndarray, val_idx: np.ndarray, model: Any,
              result: Any) -> dict[str, Any]:
    """The JSON-able model card of one trained fold.

    Parameters
    ----------
    dataset : the training dataset (``class_names``, ``y``, ``paths``, ``extractor``)
    train_idx : the slides the model (and its input standardisation) was fitted on
    val_idx : the slides that chose its epoch (their distances are recorded, not used)
    model : the trained model (its fitted ``standardize``)
    result : the fold's `training.results.FoldResult`
    """
    from napari_higt.inference.card import ModelCard
    from napari_higt.inference.domain import calibrate, standardiser

    names = [str(c) for c in dataset.class_names]
    counts = Counter(int(v) for v in np.asarray(dataset.y)[np.asarray(train_idx)])
    per_class = ", ".join(f"{counts.get(i, 0)} {c}" for i, c in enumerate(names))
    paths = [Path(p) for p in (getattr(dataset, "paths", None) or []) if p is not None]
    train_paths = [paths[int(i)] for i in train_idx if int(i) < len(paths)] if paths else []
    where = f" (feature files in {train_paths[0].parent})" if train_paths else ""
    domain = None
    stats = standardiser(model.state_dict())
    if stats is not None and len(train_idx):
        domain = calibrate(slide_distances(dataset, train_idx, *stats),
                           slide_distances(dataset, val_idx, *stats))
    metrics = {k: float(getattr(result, k)) for k in ("auc", "acc", "balanced_acc", "f1")
               if np.isfinite(getattr(result, k, float("nan")))}
    card = ModelCard(
        task=f"slide classification: {' vs '.join(names)}",
        classes=names,
        training_data=f"{len(train_idx)} slides ({per_class}){where}, seed {result.seed}, "
                      f"fold {result.fold} of the run",
        labels=str(getattr(dataset, "labels_source", None)
                   or "the slide labels given to training (one class per slide)"),
        extractor=str(getattr(dataset, "extractor", None) or "unknown"),
        scale=training_scale(train_paths),
        validation={"protocol": f"{result.protocol}: "
                                f"{PROTOCOL_TEXT.get(result.protocol, result.protocol)}",
                    "metrics": metrics, "n": int(result.n_val),
                    "epoch": int(result.best_epoch)},
        demonstration=False, provenance="recorded", domain=domain)
    return card.to_dict()


def write_fold_card(card: dict[str, Any], *paths: Path | None) -> None:
    """Put ``card`` into each existing checkpoint of ``paths`` (best.pt, last.pt)."""
    from napari_higt.inference.checkpoint import write_card

    for p in paths:
        if p is not None and Path(p).is_file():
            write_card(p, card)
