"""Applying a trained classifier (no Qt): classifier checkpoints (saved by ``training``,
loaded here), batch prediction of feature files with the predictions CSV, and one slide
through the whole pipeline for the viewer and ``napari-higt demo``.

Main entry points (imported lazily, so ``import napari_higt.inference`` stays light)::

    from napari_higt.inference import (load_checkpoint, model_from_checkpoint,
                                       predict_slides, write_predictions_csv,
                                       run_inference, load_cached_result)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint", "config_differences": "checkpoint",
    "Prediction": "predict", "predict_slides": "predict",
    "write_predictions_csv": "predict", "predictions_csv_text": "predict",
    "InferenceResult": "slide", "run_inference": "slide",
    "load_cached_result": "slide", "checkpoint_extractor": "slide",
    "cached_features": "slide",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'napari_higt.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f"napari_higt.inference.{mod}"), name)
