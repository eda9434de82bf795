"""Annotated figures of a slide with a score heatmap, rendered by matplotlib (no GL needed).

A figure shows a slide region (or the whole slide), the heatmap blended at a chosen
opacity, a scale bar in µm (or px when the slide's scale is unknown, and marked *assumed*
when it was stated rather than read from the file), a colour bar named after the score,
an optional title (the prediction) with notes and warnings under it, a caption under the
slide (what the colours mean) and optional node markers.
"""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_higt.explain.colours import colormap_table, score_rgba
from napari_higt.explain.rasters import ScoreRaster
from napari_higt.explain.registry import SEQUENTIAL_CMAP
from napari_higt.io import atomic_write_via

__all__ = ["FigureSpec", "annotated_figure", "save_figure", "slide_figure", "nice_length"]

FIGURE_FORMATS = (".png", ".svg", ".pdf")


def nice_length(target: float) -> float:
    """The 1-2-5 x 10^k number closest below ``target`` (scale bar lengths)."""
    if target <= 0:
        raise ValueError("target must be positive")
    base = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * base <= target:
            return m * base
    return base


@dataclass
class FigureSpec:
    """What to draw besides the slide pixels.

    Attributes
    ----------
    title : str
        Figure title, e.g. the prediction and its probability.
    score_name : str
        Label of the colour bar.
    cmap : str
        Colormap of the heatmap: an `explain.colours` map (a diverging one for signed
        scores) or a matplotlib name; its opacity rises with the score, as in the viewer.
    opacity : float
        Scales the colormap's opacity ramp, in [0, 1] (1 = as the viewer shows it).
    clim : (float, float), optional
        Colour limits; the data range when None.
    mpp : (float, float), optional
        µm per level-0 px; None draws the scale bar in pixels.
    mpp_assumed : bool
        The scale was stated, not read from the file: the scale bar says so.
    markers : (M, 2) array, optional
        Level-0 (x, y) points to mark (e.g. node centres).
    notes : lines under the title (e.g. the model card's headline).
    warnings : lines under those, marked as warnings and drawn in red (e.g. out of domain).
    caption : text under the slide (e.g. what high and low values of the map mean).
    """

    title: str = ""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    caption: str = ""
    score_name: str = "score"
    cmap: str = SEQUENTIAL_CMAP
    opacity: float = 1.0
    clim: tuple[float, float] | None = None
    mpp: tuple[float, float] | None = None
    mpp_assumed: bool = False
    markers: np.ndarray | None = None


def annotated_figure(
    background: np.ndarray,
    extent: tuple[float, float, float, float],
    raster: ScoreRaster | None,
    spec: FigureSpec,
    figsize: tuple[float, float] | None = None,
):
    """Draw ``background`` (RGB) covering ``extent`` with ``raster`` blended on top.

    Parameters
    ----------
    background : (h, w, 3) uint8
        Slide pixels of the region.
    extent : (x0, y0, x1, y1)
        The region in level-0 px.
    raster : ScoreRaster or None
        Scores on the whole slide's grid (cropped here to the region).
    spec : FigureSpec

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    x0, y0, x1, y1 = (float(v) for v in extent)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty extent {extent}")
    aspect = (y1 - y0) / (x1 - x0)
    if figsize is None:
        figsize = (7.5, max(3.0, min(12.0, 6.0 * aspect)) + 0.8)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(background, extent=(x0, x1, y1, y0), interpolation="lanczos")
    if raster is not None:
        h, w = raster.values.shape
        ds = raster.downsample
        cx0, cy0 = max(0, int(x0 // ds)), max(0, int(y0 // ds))
        cx1, cy1 = min(w, int(math.ceil(x1 / ds))), min(h, int(math.ceil(y1 / ds)))
        clim = spec.clim or raster.finite_range
        # The viewer's colours and opacity ramp (`explain.colours`), painted as RGBA.
        rgba = score_rgba(raster.values[cy0:cy1, cx0:cx1], clim, spec.cmap, spec.opacity)
        ax.imshow(rgba, extent=(cx0 * ds, cx1 * ds, cy1 * ds, cy0 * ds),
                  interpolation="nearest")
        _colour_bar(fig, ax, spec, clim)
    if spec.markers is not None and len(spec.markers):
        m = np.asarray(spec.markers, dtype=float).reshape(-1, 2)
        ax.scatter(m[:, 0], m[:, 1], s=12, facecolors="none", edgecolors="cyan", linewidths=0.8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_axis_off()
    heading = [spec.title] if spec.title else []
    heading += [textwrap.fill(t, 90) for t in spec.notes]
    heading += [textwrap.fill(f"WARNING: {t}", 90) for t in spec.warnings]
    if heading:
        ax.set_title("\n".join(heading), fontsize=10 if len(heading) > 1 else None,
                     color="firebrick" if spec.warnings else "black")
    if spec.caption:
        fig.supxlabel(textwrap.fill(spec.caption, 110), fontsize=8)
    _scale_bar(ax, (x0, y0, x1, y1), spec.mpp, spec.mpp_assumed)
    return fig


def _colour_bar(fig, ax, spec: FigureSpec, clim: tuple[float, float]) -> None:
    """The colour bar of the heatmap: the same table, its ramp seen over white."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    table = colormap_table(spec.cmap)
    table[:, 3] *= float(np.clip(spec.opacity, 0, 1))
    bar = fig.colorbar(ScalarMappable(Normalize(*clim), ListedColormap(table)), ax=ax,
                       shrink=0.8, pad=0.02)
    bar.set_label(spec.score_name)


def _scale_bar(ax, extent, mpp, assumed: bool) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = extent
    width_px = x1 - x0
    unit_per_px = mpp[0] if mpp else 1.0
    length = nice_length(width_px * unit_per_px / 5)
    length_px = length / unit_per_px
    if mpp:
        label = f"{length:g} µm" if length < 1000 else f"{length / 1000:g} mm"
        if assumed:
            label += " (assumed scale)"
    else:
        label = f"{length:g} px (scale unknown)"
    bar_h = (y1 - y0) * 0.012
    bx = x1 - (x1 - x0) * 0.04 - length_px
    by = y1 - (y1 - y0) * 0.05
    ax.add_patch(Rectangle((bx, by), length_px, bar_h, facecolor="black", edgecolor="white",
                           linewidth=0.8, zorder=5, gid="scalebar"))
    ax.text(bx + length_px / 2, by - bar_h * 0.8, label, ha="center", va="bottom",
            color="black", fontsize=9, zorder=5,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5})


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a figure as PNG, SVG or PDF (by suffix), atomically."""
    path = Path(path)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}, not {path.suffix!r}")
    if dpi < 10 or dpi > 2400:
        raise ValueError(f"dpi must be between 10 and 2400, got {dpi}")
    return atomic_write_via(path, lambda fh: fig.savefig(fh, dpi=dpi,
                                                        format=path.suffix[1:].lower()),
                            f"figure {path.name}")


def slide_figure(
    slide,
    raster: ScoreRaster | None,
    spec: FigureSpec,
    region: tuple[int, int, int, int] | None = None,
    max_pixels: int = 2048,
):
    """An annotated figure of a whole slide or of ``region`` = (x0, y0, x1, y1) level-0 px.

    The background is read from the coarsest pyramid level that still gives about
    ``max_pixels`` on the long side of the region.
    """
    w0, h0 = slide.dimensions
    x0, y0, x1, y1 = region if region is not None else (0, 0, w0, h0)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(w0, int(x1)), min(h0, int(y1))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {region} lies outside the slide ({w0} x {h0} px)")
    target = max(x1 - x0, y1 - y0) / max_pixels
    levels = slide.pyramid_levels()
    arrays = slide.pyramid()
    idx = max([i for i, lv in enumerate(levels) if lv.downsample <= max(target, 1.0)] or [0])
    ds = levels[idx].downsample
    r0, r1 = int(y0 / ds), int(math.ceil(y1 / ds))
    c0, c1 = int(x0 / ds), int(math.ceil(x1 / ds))
    bg = np.asarray(arrays[idx][r0:r1, c0:c1])
    # The extent of the pixels actually read (whole level pixels), in level-0 px.
    extent = (c0 * ds, r0 * ds, c0 * ds + bg.shape[1] * ds, r0 * ds + bg.shape[0] * ds)
    if spec.mpp is None and slide.mpp is not None:
        spec.mpp = slide.mpp
        spec.mpp_assumed = not slide.mpp_from_file
    return annotated_figure(bg, extent, raster, spec)
