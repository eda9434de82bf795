"""Training and evaluation of slide classifiers (no Qt): datasets of slide graphs + labels,
the train/evaluate loop with callbacks and a cancel token, k-fold cross-validation,
checkpoints written through ``inference.checkpoint``. H-MGDM pretraining lives in
``training.pretrain``; applying a trained model lives in ``napari_higt.inference``.

Main entry points (imported lazily, so ``import napari_higt.training`` stays light)::

    from napari_higt.training import (SlideGraphDataset, TrainConfig, train_cross_validation,
                                      CancelToken)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SlideGraphDataset": "dataset",
    "TrainConfig": "config", "CVResult": "results", "FoldResult": "results",
    "train_cross_validation": "engine", "train_fold": "fold", "make_splits": "splits",
    "checkpoint_path": "runs", "best_checkpoint": "runs",
    "CancelToken": "callbacks", "Callback": "callbacks", "StepInfo": "callbacks",
    "EpochInfo": "callbacks", "FoldInfo": "callbacks",
    "auc_score": "metrics", "accuracy": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'napari_higt.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"napari_higt.training.{mod}"), name)
