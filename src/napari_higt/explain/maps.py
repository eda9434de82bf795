"""Per-node model outputs -> per-level score rasters of a slide.

`score_maps` turns any per-node score (node importance, IHPool fitness, SSA context, BI
contributions, ...) into one `ScoreRaster` per graph level, aligned with the slide, with the
levels and normalisation of its `explain.registry` entry. BI contributions are shown
relative to the slide's own average (`relative_contribution`), so a diverging colormap tells
which patches or regions contribute more (warm) or less (cool) than usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_higt.explain.rasters import ScoreRaster, node_raster
from napari_higt.explain.registry import ScoreSpec, score_spec
from napari_higt.graph.hierarchy import HierarchicalGraph
from napari_higt.levels import LEVEL_IDS

__all__ = ["ScoreMap", "score_maps", "relative_contribution"]


@dataclass(frozen=True)
class ScoreMap:
    """One score painted on one level."""

    name: str
    level: str
    raster: ScoreRaster
    diverging: bool

    @property
    def spec(self) -> ScoreSpec:
        """The score's registry entry (display name, meaning, colormap)."""
        return score_spec(self.name)

    @property
    def colormap(self) -> str:
        return self.spec.colormap

    @property
    def clim(self) -> tuple[float, float]:
        """Contrast limits: the data range, symmetric around 0 for diverging scores."""
        lo, hi = self.raster.finite_range
        if self.diverging:
            m = max(abs(lo), abs(hi), 1e-6)
            return (-m, m)
        return (lo, hi)


def relative_contribution(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Log-ratio of each value to the mean over ``mask`` (0 = average; NaN off mask).

    Contributions are norms (>= 0); log2(v / mean) makes twice-average and half-average
    symmetric around 0, which suits a diverging colormap.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    sel = values[mask]
    if sel.size == 0:
        return out
    mean = sel.mean()
    if mean <= 0:
        out[mask] = 0.0
        return out
    out[mask] = np.log2(np.maximum(sel, mean * 1e-3) / mean)
    return out


def score_maps(
    graph: HierarchicalGraph,
    scores: dict[str, np.ndarray],
    slide_dimensions: tuple[int, int],
    levels: Sequence[str] | None = None,
    pixels_per_tile: int = 4,
) -> list[ScoreMap]:
    """Paint each (N,) per-node score on the graph levels it belongs to.

    Parameters
    ----------
    graph : HierarchicalGraph
    scores : dict name -> (N,) array
        Per-node values indexed like the graph's nodes (NaN = not scored).
    slide_dimensions : (width, height) level-0 px
    levels : sequence of level names, optional
        Restrict to these levels; by default each score's levels in `explain.registry`.

    Returns
    -------
    list of ScoreMap, in the order of ``scores`` then levels.
    """
    out = []
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != graph.num_nodes:
            raise ValueError(f"score {name!r} has {len(values)} values for "
                             f"{graph.num_nodes} nodes")
        spec = score_spec(name)
        diverging = spec.diverging
        for level in levels or spec.levels:
            mask = graph.level == LEVEL_IDS[level]
            if not mask.any():
                continue
            v = relative_contribution(values, mask) if diverging else values
            raster = node_raster(graph.coords[mask], graph.patch_size[level], v[mask],
                                 slide_dimensions, pixels_per_tile)
            out.append(ScoreMap(name, level, raster, diverging))
    return out
