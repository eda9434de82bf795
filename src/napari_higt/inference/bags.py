"""Predict bags without coordinates (``.pt``, features-only ``.h5``) with a MIL checkpoint.

A bag has no graph, so there is nothing to paint: a :class:`Prediction` of a bag carries the
slide's class probabilities and the per-instance attention (``scores["attention"]``, in the
bag's row order), not a graph. Graph models (HIGT, H2-MIL) cannot read bags and are refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import CheckpointError, FeatureError, UserFacingError
from napari_higt.inference.predict import Prediction

__all__ = ["is_bag_file", "predict_bags"]


def is_bag_file(path: str | os.PathLike) -> bool:
    """True for a feature file without coordinates: a ``.pt`` bag or an ``.h5`` holding a
    root ``features`` dataset and no ``coords``."""
    from napari_higt.features.bags import coordinate_free_files

    p = Path(path)
    if p.suffix.lower() == ".pt":
        return True
    return p.suffix.lower() == ".h5" and p.name in coordinate_free_files(p.parent, [p.stem])


def predict_bags(
    checkpoint: str | os.PathLike | dict[str, Any],
    paths: Sequence[str | os.PathLike],
    device: str | None = "auto",
    progress: Callable[[int, int], Any] | None = None,
    on_error: Callable[[Path, UserFacingError], Any] | None = None,
) -> list[Prediction]:
    """One :class:`Prediction` per bag file (see the module docstring).

    Raises
    ------
    CheckpointError
        An unreadable checkpoint, or one of a model that needs the slide graph.
    FeatureError
        A bad bag (also of another width than the checkpoint's) when ``on_error`` is None.
    """
    import torch

    from napari_higt.devices import resolve_device
    from napari_higt.features.bags import read_bag
    from napari_higt.inference.checkpoint import load_checkpoint, model_from_checkpoint
    from napari_higt.models import needs_graph
    from napari_higt.models.bag import BagBatch

    ck = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = ck["config"]
    name = cfg["model"].get("model", "higt")
    if needs_graph(name):
        raise CheckpointError(
            f"this checkpoint is a {name} model, which reads slide graphs: bags without "
            "coordinates cannot be predicted with it; predict the slides' .h5 feature files")
    dev = resolve_device(device)
    model = model_from_checkpoint(ck).to(dev).eval()
    classes = [str(c) for c in cfg["class_names"]]
    in_dim = int(cfg.get("in_dim") or cfg["model"]["in_dim"])
    out: list[Prediction] = []
    for k, p in enumerate(paths):
        p = Path(p)
        try:
            bag = read_bag(p, dim=in_dim)
            with torch.no_grad():
                o = model(BagBatch.from_bags([torch.from_numpy(bag.features)]).to(dev))
            prob = torch.softmax(o.logits.float(), -1)[0].cpu().numpy()
            if not np.isfinite(prob).all():
                raise FeatureError(f"{p}: the model's output for this bag is not finite")
        except UserFacingError as exc:
            if on_error is None:
                raise
            on_error(p, exc)
        else:
            i = int(prob.argmax())
            out.append(Prediction(
                bag.slide_id, classes[i], i, {c: float(v) for c, v in zip(classes, prob)},
                str(p), int(bag.features.shape[0]),
                {"attention": o.mil_attention.float().cpu().numpy()}))
        if progress is not None:
            progress(k + 1, len(paths))
    return out
