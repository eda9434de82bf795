"""Per-node model outputs -> per-level score rasters of a slide.

`score_maps` turns any per-node score (node importance, IHPool fitness, SSA context, BI
contributions, ...) into one `ScoreRaster` per graph level, aligned with the slide, with the
levels and normalisation of its `explain.registry` entry (`explain.normalise`: percentiles
within the slide and level, signed ones for the BI contributions, or raw values on request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_higt.explain.normalise import normalise
from napari_higt.explain.rasters import ScoreRaster, node_raster
from napari_higt.explain.registry import ScoreSpec, score_spec
from napari_higt.graph.hierarchy import HierarchicalGraph
from napari_higt.levels import LEVEL_IDS

__all__ = ["ScoreMap", "score_maps"]


@dataclass(frozen=True)
class ScoreMap:
    """One score painted on one level."""

    name: str
    level: str
    raster: ScoreRaster
    diverging: bool
    raw: bool = False

    @property
    def spec(self) -> ScoreSpec:
        """The score's registry entry (display name, meaning, colormap)."""
        return score_spec(self.name)

    @property
    def colormap(self) -> str:
        return self.spec.colormap

    @property
    def clim(self) -> tuple[float, float]:
        """Contrast limits: the normalised range (0-100, or -100-100 for signed scores);
        for raw values the data range, symmetric around 0 for signed scores."""
        if not self.raw:
            return (-100.0, 100.0) if self.diverging else (0.0, 100.0)
        lo, hi = self.raster.finite_range
        if self.diverging:
            m = max(abs(lo), abs(hi), 1e-6)
            return (-m, m)
        return (lo, hi)

    def legend(self, cls: str | None = None) -> str:
        """What high and low mean on this map (registry text, with its normalisation)."""
        return self.spec.legend(self.level, cls, self.raw)


def score_maps(
    graph: HierarchicalGraph,
    scores: dict[str, np.ndarray],
    slide_dimensions: tuple[int, int],
    levels: Sequence[str] | None = None,
    pixels_per_tile: int = 4,
    raw: bool = False,
) -> list[ScoreMap]:
    """Paint each (N,) per-node score on the graph levels it belongs to.

    Parameters
    ----------
    graph : HierarchicalGraph
    scores : dict name -> (N,) array
        Raw per-node values indexed like the graph's nodes (NaN = not scored).
    slide_dimensions : (width, height) level-0 px
    levels : sequence of level names, optional
        Restrict to these levels; by default each score's levels in `explain.registry`.
    raw : paint the raw values instead of the registry's normalisation.

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
        for level in levels or spec.levels:
            mask = graph.level == LEVEL_IDS[level]
            if not mask.any():
                continue
            v = values[mask] if raw else normalise(values[mask], spec.normalisation)
            raster = node_raster(graph.coords[mask], graph.patch_size[level], v,
                                 slide_dimensions, pixels_per_tile)
            out.append(ScoreMap(name, level, raster, spec.diverging, raw))
    return out
