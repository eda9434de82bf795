"""Painting an inference result on its slide: score maps per level, BI maps, prediction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari_higt.inference import InferenceResult, load_cached_result
from napari_higt.ui.layers import slide_of_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["show_result", "show_cached_results", "RESULT_KEY"]

#: Where the result of the last run lives on the slide layer (for the inspector).
RESULT_KEY = "higt_result"


def show_result(viewer: napari.viewer.Viewer, slide_layer, result: InferenceResult) -> list:
    """Add the score layers of ``result`` over ``slide_layer``; returns the new layers.

    The registry's default map is painted on x5 and x10 (visible: x10), the BI contributions as
    two diverging maps (region -> patch on patches, patch -> region on regions); the result
    is kept in ``slide_layer.metadata`` for the inspector. This computes the maps on the
    calling thread; widgets prepare them in their worker (`napari_higt.ui.paint`).
    """
    from napari_higt.ui.paint import paint_result, prepare_result_paint

    slide = slide_of_layer(slide_layer)
    return paint_result(viewer, slide_layer,
                        prepare_result_paint(result, slide.path, slide.dimensions))


def show_cached_results(viewer: napari.viewer.Viewer, slide_layer,
                        feature_path: str | Path) -> InferenceResult | None:
    """Paint the scores cached in ``feature_path`` (by an earlier run), if it has any and
    they are this slide's (a `UserFacingError` says when they are not)."""
    result = load_cached_result(feature_path, slide_of_layer(slide_layer).path, override=None)
    if result is not None:
        show_result(viewer, slide_layer, result)
    return result
