"""Painting an inference result in two halves: rasters off the GUI thread, layers on it.

`prepare_result_paint` turns a result into everything the canvas needs (one `ScoreMap` per
score and level, the tissue no tile covers); it is plain numpy and runs in the widget's
worker. `paint_result` then only hands arrays to napari, so the viewer does not freeze while
a slide's maps are computed. `load_and_prepare` does the same for the scores an earlier run
cached in a feature file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_higt.explain.maps import ScoreMap, score_maps
from napari_higt.explain.registry import default_score, score_keys
from napari_higt.levels import PATCH
from napari_higt.ui.results import RESULT_KEY

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.inference import InferenceResult
    from napari_higt.slide.tissue import TissueMask

__all__ = ["ResultPaint", "prepare_result_paint", "paint_result", "iter_paint_result",
           "load_and_prepare",
           "edge_strip", "slide_mask", "TISSUE_KEY"]
#: Tissue masks already computed, by (slide path, tile side): one per slide, as the
#: pipeline makes it (`slide.tissue.mask_size_for`); a mask takes seconds.
_MASKS: dict[tuple[str, float], Any] = {}
#: ``slide_layer.metadata`` key of the per-node tissue fractions of the shown result.
TISSUE_KEY = "higt_tissue_fraction"


@dataclass
class ResultPaint:
    """What the canvas shows of one result, computed off the GUI thread."""

    result: Any  # napari_higt.inference.InferenceResult
    maps: list[ScoreMap]
    strip: Any = None  # TissueMask of tissue no tile covers, or None
    tissue_fraction: Any = None  # (N,) per node, for the inspector


def slide_mask(slide_path: str | Path, tile_size0: float, mask: TissueMask | None = None
               ) -> TissueMask:
    """The slide's tissue mask on the pipeline's grid, remembered per slide (``mask``: one
    the caller computed, remembered for later)."""
    from napari_higt.slide import Slide
    from napari_higt.slide.tissue import mask_size_for, tissue_mask

    key = (str(slide_path), float(tile_size0))
    if mask is not None:
        _MASKS[key] = mask
    if key not in _MASKS:
        with Slide(slide_path) as s:
            _MASKS[key] = tissue_mask(s, max_size=mask_size_for(s.dimensions, tile_size0))
    return _MASKS[key]


def edge_strip(slide_path: str | Path, tile_size0: float,
               dimensions: tuple[int, int]) -> TissueMask:
    """The slide's tissue past its last whole tile (`slide.coverage.edge_strip_tissue`)."""
    from napari_higt.slide.coverage import edge_strip_tissue

    return edge_strip_tissue(slide_mask(slide_path, tile_size0), tile_size0, dimensions)


def prepare_result_paint(result: InferenceResult, slide_path: str | Path,
                         dimensions: tuple[int, int]) -> ResultPaint:
    """The score maps of ``result`` (registry order), its slide's unscored strip and the
    nodes' tissue fractions."""
    from napari_higt.graph.layout import node_tissue_fraction

    scores = {k: result.scores[k] for k in score_keys("paint") if k in result.scores}
    maps = score_maps(result.graph, scores, dimensions)
    size0 = float(result.graph.patch_size[PATCH])
    tissue = node_tissue_fraction(None, result.graph, slide_mask(slide_path, size0))
    return ResultPaint(result, maps, edge_strip(slide_path, size0, dimensions), tissue)


def load_and_prepare(feature_path: str | Path, slide_path: str | Path,
                     dimensions: tuple[int, int]) -> ResultPaint | None:
    """The result cached in ``feature_path`` ready to paint, or None when it holds none.

    Raises `UserFacingError` when the cached scores are not this slide's.
    """
    from napari_higt.inference import load_cached_result

    result = load_cached_result(feature_path, slide_path, override=None)
    return None if result is None else prepare_result_paint(result, slide_path, dimensions)


def paint_result(viewer: napari.viewer.Viewer, slide_layer, paint: ResultPaint) -> list:
    """Add the score layers of a prepared result over ``slide_layer``; returns them.

    The registry's default map starts visible on x10 (its x5 map and the others are a
    click away in the layer list); the tissue no tile covers is striped; the result is kept
    in ``slide_layer.metadata`` for the inspector and the export widget.
    """
    return [ly for ly in dict.fromkeys(iter_paint_result(viewer, slide_layer, paint))
            if ly.metadata.get("higt_role") == "score"]


def iter_paint_result(viewer: napari.viewer.Viewer, slide_layer, paint: ResultPaint):
    """`paint_result` one step at a time: yields a layer after each change to it."""
    from napari_higt.ui.heatmaps import add_unscored_strip, iter_score_maps
    from napari_higt.ui.layers import slide_of_layer

    slide = slide_of_layer(slide_layer)
    # Before the layers: widgets refreshed by their insertion see the result.
    slide_layer.metadata[TISSUE_KEY] = paint.tissue_fraction
    slide_layer.metadata[RESULT_KEY] = paint.result
    default = default_score([m.name for m in paint.maps])
    fine = any(m.name == default and m.level == PATCH for m in paint.maps)
    yield from iter_score_maps(viewer, paint.maps, slide,
                               visible={(default, PATCH)} if fine else {default})
    strip = add_unscored_strip(viewer, paint.strip, slide)
    if strip is not None:
        yield strip
    if viewer.layers.selection.active is not slide_layer:
        viewer.layers.selection.active = slide_layer
