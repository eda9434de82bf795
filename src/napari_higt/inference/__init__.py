"""Applying a trained classifier (no Qt): classifier checkpoints (saved by ``training``,
loaded here), batch prediction of feature files with the predictions CSV, and one slide
through the whole pipeline for the viewer and ``napari-higt demo``.

The modules import torch, h5py and the feature code only when a function runs, so
``import napari_higt.inference`` stays light.
"""

from __future__ import annotations

from napari_higt.inference.checkpoint import (
    config_differences,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from napari_higt.inference.predict import (
    Prediction,
    predict_slides,
    predictions_csv_text,
    write_predictions_csv,
)
from napari_higt.inference.slide import (
    InferenceResult,
    cached_features,
    checkpoint_extractor,
    load_cached_result,
    run_inference,
)

__all__ = ["save_checkpoint", "load_checkpoint", "model_from_checkpoint", "config_differences",
           "Prediction", "predict_slides", "predictions_csv_text", "write_predictions_csv",
           "InferenceResult", "run_inference", "load_cached_result", "checkpoint_extractor",
           "cached_features"]
