"""The SLIC entities of one x10 patch of a slide, and their H-MGDM reconstruction error.

What the Entity overlay widget shows, computed without Qt: the patch is the tiler's x10 tile
(`napari_higt.slide.tiling.tile_origin_at`, `napari_higt.slide.tiling.level_grid`), its
entity graph `napari_higt.graph.entities.entity_graph`, and with an encoder checkpoint
`napari_higt.models.hmgdm.reconstruction_error` of every entity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_higt.errors import Cancelled
from napari_higt.levels import PATCH

__all__ = ["PatchEntities", "compute_patch_entities"]


@dataclass
class PatchEntities:
    """What `compute_patch_entities` returns."""

    origin: tuple[int, int]  # level-0 (x, y) of the patch
    size0: float  # patch side in level-0 px
    rgb: np.ndarray  # (PATCH_SIZE, PATCH_SIZE, 3) uint8
    graph: object  # PyG Data (x, edge_index, pos, centroid, label_image)
    error: np.ndarray | None = None  # (N,) reconstruction error per entity
    mask: np.ndarray | None = None  # (N,) bool sampled mask, True = masked
    note: str = ""


def compute_patch_entities(slide_path: str | os.PathLike, mpp: float | None,
                           origin: tuple[int, int], n_segments: int, compactness: float,
                           encoder: str | os.PathLike | None = None,
                           cancel: Callable[[], bool] | None = None) -> PatchEntities:
    """Read the x10 patch at ``origin`` and build its entity graph (thread-safe).

    Parameters
    ----------
    slide_path : the slide file
    mpp : level-0 µm per pixel, overriding the file's (None: the file's own)
    origin : level-0 (x, y) top-left of the patch
    n_segments, compactness : SLIC settings
    encoder : an H-MGDM checkpoint; then also the per-entity reconstruction error and a
        sampled mask, and the graph uses the encoder's entity feature settings
    cancel : polled between steps; True raises `Cancelled`
    """
    from napari_higt.graph.entities import entity_graph
    from napari_higt.slide import Slide
    from napari_higt.slide.tiling import level_grid, read_tile

    def check():
        if cancel is not None and cancel():
            raise Cancelled()

    with Slide(slide_path, mpp=mpp) as s:
        grid = level_grid(s, PATCH, [origin])
        rgb = read_tile(s, grid, origin)
    check()
    params: dict = {"n_segments": int(n_segments), "compactness": float(compactness)}
    model = None
    note = ""
    if encoder:
        from napari_higt.models.hmgdm import load_hmgdm_checkpoint

        model, _ = load_hmgdm_checkpoint(encoder)
        ent = dict(model.cfg.entity)
        for key in ("features", "crop_size", "min_tissue"):
            if key in ent:
                params[key] = ent[key]
        differs = [f"{k}={ent[k]}" for k in ("n_segments", "compactness")
                   if k in ent and float(ent[k]) != float(params[k])]
        if differs:
            note = f"the encoder was pretrained with {', '.join(differs)}"
    graph = entity_graph(rgb, **params)
    check()
    out = PatchEntities(origin=tuple(origin), size0=grid.size0, rgb=rgb, graph=graph,
                        note=note)
    if model is not None and graph.num_nodes >= 2:
        from napari_higt.models.hmgdm import reconstruction_error

        rec = reconstruction_error(model, graph)
        out.error = rec["error"]
        out.mask = rec["mask"]
    check()
    return out
