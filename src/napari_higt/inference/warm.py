"""Warming a checkpoint's model up before the first slide, so the first Run is not the slow one.

The first forward pass of a process pays for importing the graph libraries, building the
model and setting up the autograd and CPU kernels (about ten seconds on a loaded laptop CPU);
a second pass over the same slide takes well under a second. `warm_up` does that once on a
tiny synthetic graph of the checkpoint's feature width, through the very call a prediction
makes (`explain.reduce.explain_forward`), so a viewer can run it in the background as soon
as a checkpoint is chosen.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

__all__ = ["warm_up", "tiny_graph"]


def tiny_graph(in_dim: int):
    """A 2-region, 4-patch `HierarchicalGraph` with zero features of width ``in_dim``."""
    from napari_higt.graph import HierarchicalGraph

    c10 = np.array([[0, 0], [512, 0], [0, 512], [512, 512], [1024, 0], [1536, 0]], np.int64)
    c5 = np.array([[0, 0], [1024, 0]], np.int64)
    feats = {"x10": np.zeros((len(c10), in_dim), np.float32),
             "x5": np.zeros((len(c5), in_dim), np.float32)}
    return HierarchicalGraph.from_arrays({"x10": c10, "x5": c5}, feats,
                                         patch_size={"x10": 512, "x5": 1024})


def warm_up(checkpoint: str | os.PathLike | dict[str, Any], device: str = "auto") -> float:
    """Build the checkpoint's model and explain one tiny graph with it; returns seconds.

    Raises
    ------
    napari_higt.errors.UserFacingError
        An unreadable checkpoint (the same message a Run would give).
    """
    from napari_higt.devices import resolve_device
    from napari_higt.explain.reduce import explain_forward
    from napari_higt.inference.checkpoint import load_checkpoint, model_from_checkpoint

    t0 = time.perf_counter()
    ck = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = ck["config"]
    in_dim = int(cfg.get("in_dim") or cfg["model"]["in_dim"])
    dev = resolve_device(device)
    model = model_from_checkpoint(ck).to(dev)
    graph = tiny_graph(in_dim)
    explain_forward(model, graph.to_pyg().to(dev), graph.level)
    return time.perf_counter() - t0
