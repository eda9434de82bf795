"""Everything a user takes away from one slide's result: figure, QuPath GeoJSON, node CSV.

`export_result` is what the export widget, ``napari-higt export`` and the demo call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_higt.errors import StorageError, UserFacingError

__all__ = ["export_result", "result_figure"]


def export_result(
    slide,
    result,
    out_dir: str | os.PathLike,
    score: str | None = None,
    level: str = "x10",
    formats: Sequence[str] = ("png", "svg"),
    opacity: float = 1.0,
    dpi: int = 150,
    region: tuple[int, int, int, int] | None = None,
    markers: bool = False,
    object_type: str = "tile",
    max_pixels: int = 2048,
    raw: bool = False,
    report: bool = True,
) -> dict[str, Path]:
    """Write the annotated figure(s), the GeoJSON and the CSV of one inference result.

    Parameters
    ----------
    slide : napari_higt.slide.Slide
    result : napari_higt.inference.InferenceResult
    out_dir : folder (created); files are ``<slide_id>.<ext>``, ``<slide_id>.geojson``,
        ``<slide_id>_nodes.csv`` and ``<slide_id>_report.md`` (prediction, warnings, model
        card, what the numbers mean: `export.report`), each written atomically.
    score : the per-node score painted on the figure (default: the registry's default map).
    level : "x10" (patches) or "x5" (regions) for the figure.
    formats : figure formats among png, svg, pdf.
    region : (x0, y0, x1, y1) level-0 px; the whole slide when None.
    markers : mark the centres of the painted nodes.
    object_type : QuPath object type of the GeoJSON features ("tile" or "detection").
    raw : write and paint raw score values instead of the registry's normalisation
        (percentiles within the slide and level). Either way the CSV column / GeoJSON
        measurement names say which (``<display name> [percentile]`` or ``[raw]``); a score
        that does not exist for a node is an empty cell / an absent measurement.

    The ``node`` column of the CSV and the ``node_index`` (and ``id``) of the GeoJSON are the
    graph's node ids, as in the inspector and ``result.scores[name][node]``.

    Returns
    -------
    dict kind -> path (kinds: the formats, "geojson", "csv", "report").

    Raises
    ------
    UserFacingError
        When the result has no such score or level, or a file cannot be written (the
        message names the folder; nothing half-written is left).
    """
    from napari_higt.explain.normalise import node_values
    from napari_higt.explain.registry import SCORES, default_score, score_keys
    from napari_higt.export.figure import FIGURE_FORMATS, save_figure
    from napari_higt.export.geojson import nodes_to_geojson, write_geojson
    from napari_higt.export.table import write_node_csv
    from napari_higt.graph.layout import level_names, node_sizes
    from napari_higt.io import writable_folder

    bad = [f for f in formats if f".{f.lower()}" not in FIGURE_FORMATS]
    if bad:
        raise UserFacingError(f"unknown figure format(s) {bad}; use png, svg or pdf")
    if not 10 <= dpi <= 2400:
        raise UserFacingError(f"dpi must be between 10 and 2400, got {dpi}")
    if not 0 <= opacity <= 1:
        raise UserFacingError(f"opacity must be between 0 and 1, got {opacity}")
    if region is not None:
        region = _clip_region(region, slide.dimensions)
    g = result.graph
    score = score or default_score(result.scores)
    fig = result_figure(slide, result, score, level, opacity, region, markers, max_pixels, raw)
    out_dir = writable_folder(out_dir, "the export folder")
    sid = result.slide_id
    written: dict[str, Path] = {}
    try:
        for fmt in formats:
            written[fmt] = save_figure(fig, out_dir / f"{sid}.{fmt}", dpi=dpi)
        keep = g.level != 0  # the thumbnail is the whole slide, not a tile
        # The graph's own node ids: the inspector's and the Python API's numbering.
        ids = np.flatnonzero(keep)
        names = level_names(g)[keep]
        sizes = node_sizes(g, slide.dimensions)
        shown = node_values(g.level, result.scores, raw=raw)
        meas = {SCORES[k].label(raw): shown[k][keep]
                for k in score_keys("export") if k in shown}
        gj = nodes_to_geojson(g.coords[keep], sizes[keep], names, meas, object_type=object_type,
                              node_ids=ids)
        written["geojson"] = write_geojson(out_dir / f"{sid}.geojson", gj)
        written["csv"] = write_node_csv(out_dir / f"{sid}_nodes.csv", g.coords[keep],
                                        sizes[keep], names, meas, slide_id=sid, node_ids=ids)
        if report:
            from napari_higt.export.report import result_report
            from napari_higt.io import atomic_write_text

            written["report"] = atomic_write_text(
                out_dir / f"{sid}_report.md",
                result_report(result, [p.name for p in written.values()], raw))
    except StorageError:
        raise  # already one line naming the folder and the space needed
    except OSError as exc:
        raise UserFacingError(f"writing to {out_dir} failed ({exc.strerror or exc}); nothing "
                              "half-written was left there") from None
    return written


def result_figure(slide, result, score: str | None = None, level: str = "x10",
                  opacity: float = 1.0, region: tuple[int, int, int, int] | None = None,
                  markers: bool = False, max_pixels: int = 2048, raw: bool = False):
    """The annotated matplotlib figure of one inference result (what `export_result` saves).

    Its title holds the prediction and the model card's headline (a demonstration model
    says so) and any out-of-domain warning; the colour bar names the score and its
    normalisation, and the caption under the slide says what high and low mean.

    Raises
    ------
    UserFacingError
        The result has no such score, or the graph no such level.
    """
    from napari_higt.explain.maps import score_maps
    from napari_higt.explain.registry import default_score
    from napari_higt.export.figure import FigureSpec, slide_figure
    from napari_higt.graph.layout import node_sizes
    from napari_higt.inference.card import prediction_text
    from napari_higt.levels import LEVEL_IDS

    g = result.graph
    score = score or default_score(result.scores)
    if score not in result.scores:
        raise UserFacingError(f"this result has no '{score}' scores; it has: "
                              f"{', '.join(sorted(result.scores)) or 'none'}")
    if level not in ("x5", "x10") or not (g.level == LEVEL_IDS[level]).any():
        raise UserFacingError(f"the graph has no {level} nodes to paint")
    maps = score_maps(g, {score: result.scores[score]}, slide.dimensions, levels=[level],
                      raw=raw)
    if not maps or not np.isfinite(maps[0].raster.values).any():
        raise UserFacingError(f"'{score}' does not exist on the {level} nodes; it is a score of "
                              f"the {' and '.join(maps[0].spec.levels if maps else ())} level")
    smap = maps[0]
    mask = g.level == LEVEL_IDS[level]
    sizes = node_sizes(g, slide.dimensions)
    card = getattr(result, "card", None)
    prob = result.probs.get(result.pred)
    spec = FigureSpec(
        title=f"{result.slide_id}: {prediction_text(result.pred, prob, card)}",
        notes=tuple([card.headline()] if card is not None else ()),
        warnings=tuple(getattr(result, "warnings", ()) or ()),
        score_name=f"{smap.spec.display_name} ({level})\n"
                   f"{smap.spec.normalisation_text(level, raw)}",
        caption=smap.legend(result.pred), opacity=opacity, cmap=smap.colormap,
        clim=smap.clim,
        markers=(g.coords[mask] + sizes[mask, None] / 2) if markers else None)
    return slide_figure(slide, smap.raster, spec, region=region, max_pixels=max_pixels)


def _clip_region(region: Sequence[int], dims: tuple[int, int]) -> tuple[int, int, int, int]:
    """``region`` (x0, y0, x1, y1) cut to the slide; `UserFacingError` when nothing is left."""
    x0, y0, x1, y1 = (int(v) for v in region)
    w, h = dims
    if x1 <= x0 or y1 <= y0:
        raise UserFacingError(f"region {x0},{y0},{x1},{y1} is empty: it needs x0 < x1 and "
                              "y0 < y1")
    cut = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
    if cut[2] <= cut[0] or cut[3] <= cut[1]:
        raise UserFacingError(f"region {x0},{y0},{x1},{y1} lies outside the slide, which is "
                              f"{w} x {h} px at level 0")
    return cut
