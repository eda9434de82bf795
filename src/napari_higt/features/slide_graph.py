"""One slide to its hierarchical graph: features (skipped when up to date), the graph in the
node order every consumer uses, and the tissue fraction of every node (for the overlay)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GraphBuild", "build_slide_graph"]


@dataclass
class GraphBuild:
    """What `build_slide_graph` returns."""

    result: Any  # napari_higt.features.pipeline.PreprocessResult
    graph: Any  # napari_higt.graph.HierarchicalGraph
    tissue_fraction: np.ndarray  # (N,) per node, in graph node order
    mask: Any = None  # the slide's TissueMask the fractions were measured on


def build_slide_graph(slide_path: str | os.PathLike, out_dir: str | os.PathLike,
                      extractor: str = "handcrafted", mpp: float | None = None,
                      extractor_config: Mapping[str, Any] | None = None,
                      tissue_threshold: float = 0.25, overwrite: bool = False,
                      progress: Callable[[int, int], Any] | None = None,
                      cancel: Callable[[], bool] | None = None) -> GraphBuild:
    """Preprocess a slide (skipped when up to date), then read its graph and node tissue
    fractions.

    Raises
    ------
    napari_higt.errors.Cancelled
        ``cancel()`` answered yes.
    UserFacingError
        Bad slide, unknown scale, no tissue, a feature file that cannot be written.
    """
    from napari_higt.errors import Cancelled
    from napari_higt.features.pipeline import run_slide
    from napari_higt.features.store import read_graph
    from napari_higt.graph.layout import node_tissue_fraction
    from napari_higt.levels import PATCH
    from napari_higt.slide import Slide
    from napari_higt.slide.tissue import mask_size_for, tissue_mask

    res = run_slide(slide_path, out_dir, extractor, mpp=mpp, extractor_config=extractor_config,
                    tissue_threshold=tissue_threshold, overwrite=overwrite, progress=progress,
                    cancel=cancel)
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    graph = read_graph(res.path)
    with Slide(slide_path, mpp=mpp) as s:
        mask = tissue_mask(s, max_size=mask_size_for(s.dimensions, graph.patch_size[PATCH]))
    return GraphBuild(res, graph, node_tissue_fraction(None, graph, mask), mask)
