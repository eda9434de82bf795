"""Painting an inference result on its slide: score maps per level, BI maps, prediction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari_higt.explain.maps import score_maps
from napari_higt.explain.registry import score_keys
from napari_higt.inference import InferenceResult, load_cached_result
from napari_higt.ui.heatmaps import add_score_maps
from napari_higt.ui.layers import slide_of_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["show_result", "show_cached_results", "RESULT_KEY"]

#: Where the result of the last run lives on the slide layer (for the inspector).
RESULT_KEY = "higt_result"


def show_result(viewer: napari.viewer.Viewer, slide_layer, result: InferenceResult,
                opacity: float = 0.55) -> list:
    """Add the score layers of ``result`` over ``slide_layer``; returns the new layers.

    ``node_importance`` is painted on x5 and x10 (visible: x10), the BI contributions as
    two diverging maps (region -> patch on patches, patch -> region on regions); the result
    is kept in ``slide_layer.metadata`` for the inspector.
    """
    slide = slide_of_layer(slide_layer)
    # In registry order, so node_importance (the one shown first) is the first layer.
    scores = {k: result.scores[k] for k in score_keys("paint") if k in result.scores}
    maps = score_maps(result.graph, scores, slide.dimensions)
    first = {"node_importance"} if "node_importance" in scores else None
    layers = add_score_maps(viewer, maps, slide, opacity=opacity, visible=first)
    # Only the fine map shows at first; the coarse one is a click away in the layer list.
    for layer, smap in zip(layers, maps):
        if smap.name == "node_importance" and smap.level == "x5":
            layer.visible = False
            layer.colorbar.visible = False
    slide_layer.metadata[RESULT_KEY] = result
    viewer.layers.selection.active = slide_layer
    return layers


def show_cached_results(viewer: napari.viewer.Viewer, slide_layer,
                        feature_path: str | Path) -> InferenceResult | None:
    """Paint the scores cached in ``feature_path`` (by an earlier run), if it has any."""
    result = load_cached_result(feature_path)
    if result is not None:
        show_result(viewer, slide_layer, result)
    return result
