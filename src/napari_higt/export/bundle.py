"""Everything a user takes away from one slide's result: figure, QuPath GeoJSON, node CSV.

`export_result` is what the export widget, ``napari-higt export`` and the demo call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_higt.errors import UserFacingError

__all__ = ["export_result"]


def export_result(
    slide,
    result,
    out_dir: str | os.PathLike,
    score: str = "node_importance",
    level: str = "x10",
    formats: Sequence[str] = ("png", "svg"),
    opacity: float = 0.5,
    dpi: int = 150,
    region: tuple[int, int, int, int] | None = None,
    markers: bool = False,
    object_type: str = "tile",
    max_pixels: int = 2048,
) -> dict[str, Path]:
    """Write the annotated figure(s), the GeoJSON and the CSV of one inference result.

    Parameters
    ----------
    slide : napari_higt.slide.Slide
    result : napari_higt.inference.InferenceResult
    out_dir : folder (created); files are ``<slide_id>.<ext>``, ``<slide_id>.geojson``,
        ``<slide_id>_nodes.csv``, each written atomically.
    score : the per-node score painted on the figure.
    level : "x10" (patches) or "x5" (regions) for the figure.
    formats : figure formats among png, svg, pdf.
    region : (x0, y0, x1, y1) level-0 px; the whole slide when None.
    markers : mark the centres of the painted nodes.
    object_type : QuPath object type of the GeoJSON features ("tile" or "detection").

    Returns
    -------
    dict kind -> path (kinds: the formats, "geojson", "csv").

    Raises
    ------
    UserFacingError
        When the result has no such score or level, or a file cannot be written (the
        message names the folder; nothing half-written is left).
    """
    from napari_higt.explain.maps import score_maps
    from napari_higt.explain.registry import SCORES, score_keys
    from napari_higt.export.figure import FigureSpec, save_figure, slide_figure
    from napari_higt.export.geojson import nodes_to_geojson, write_geojson
    from napari_higt.export.table import write_node_csv
    from napari_higt.graph.layout import level_names, node_sizes
    from napari_higt.levels import LEVEL_IDS

    from napari_higt.export.figure import FIGURE_FORMATS

    bad = [f for f in formats if f".{f.lower()}" not in FIGURE_FORMATS]
    if bad:
        raise UserFacingError(f"unknown figure format(s) {bad}; use png, svg or pdf")
    if not 10 <= dpi <= 2400:
        raise UserFacingError(f"dpi must be between 10 and 2400, got {dpi}")
    g = result.graph
    if score not in result.scores:
        raise UserFacingError(f"this result has no '{score}' scores; it has: "
                              f"{', '.join(sorted(result.scores)) or 'none'}")
    if level not in ("x5", "x10") or not (g.level == LEVEL_IDS[level]).any():
        raise UserFacingError(f"the graph has no {level} nodes to paint")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserFacingError(f"cannot create the export folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise UserFacingError(f"the export folder {out_dir} is not writable; choose another")
    sid = result.slide_id
    (smap,) = score_maps(g, {score: result.scores[score]}, slide.dimensions, levels=[level])
    mask = g.level == LEVEL_IDS[level]
    sizes = node_sizes(g, slide.dimensions)
    marks = (g.coords[mask] + sizes[mask, None] / 2) if markers else None
    prob = result.probs.get(result.pred)
    title = f"{sid}: {result.pred}" + (f" (p = {prob:.2f})" if prob is not None else "")
    written: dict[str, Path] = {}
    try:
        for fmt in formats:
            spec = FigureSpec(title=title, score_name=f"{smap.spec.display_name} ({level})",
                              opacity=opacity, cmap=smap.colormap, clim=smap.clim,
                              markers=marks)
            fig = slide_figure(slide, smap.raster, spec, region=region, max_pixels=max_pixels)
            written[fmt] = save_figure(fig, out_dir / f"{sid}.{fmt}", dpi=dpi)
        keep = g.level != 0  # the thumbnail is the whole slide, not a tile
        names = level_names(g)[keep]
        meas = {SCORES[k].display_name: np.asarray(result.scores[k])[keep]
                for k in score_keys("export") if k in result.scores}
        gj = nodes_to_geojson(g.coords[keep], sizes[keep], names, meas, object_type=object_type)
        written["geojson"] = write_geojson(out_dir / f"{sid}.geojson", gj)
        written["csv"] = write_node_csv(out_dir / f"{sid}_nodes.csv", g.coords[keep],
                                        sizes[keep], names, meas, slide_id=sid)
    except OSError as exc:
        raise UserFacingError(f"writing to {out_dir} failed ({exc.strerror or exc}); nothing "
                              "half-written was left there") from None
    return written
