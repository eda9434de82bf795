"""H-MGDM encoder checkpoints: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_higt.errors import CheckpointError
from napari_higt.graph.entities import entity_feature_dim
from napari_higt.io import load_torch, save_torch
from napari_higt.models.hmgdm.config import HMGDMConfig
from napari_higt.models.hmgdm.model import HMGDM

__all__ = ["CHECKPOINT_KIND", "CHECKPOINT_VERSION", "save_hmgdm_checkpoint", "load_hmgdm_checkpoint"]


CHECKPOINT_KIND = "napari-higt/hmgdm"
CHECKPOINT_VERSION = 1


def save_hmgdm_checkpoint(path: str | os.PathLike, model: HMGDM, extra: dict | None = None,
                          ) -> Path:
    """Write ``{kind, version, config, state_dict, **extra}`` atomically (tmp + rename)."""
    path = Path(path)
    ckpt: dict[str, Any] = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "config": model.cfg.to_dict(),
        "embed_dim": model.embed_dim,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        ckpt.update(extra)
    return save_torch(path, ckpt, f"encoder checkpoint {path.name}")


def load_hmgdm_checkpoint(path: str | os.PathLike | None, map_location="cpu",
                          ) -> tuple[HMGDM, dict]:
    """Load an H-MGDM checkpoint (``weights_only=True``) -> ``(model, checkpoint dict)``.

    Raises `CheckpointError` with what to do when the file is missing, unreadable, not an
    H-MGDM checkpoint, or its weights do not fit its configuration.
    """
    hint = "make one with `napari-higt pretrain SLIDES... --out ENCODER.pt`"
    if path is None or str(path) == "":
        raise CheckpointError(f"the hmgdm extractor needs an encoder checkpoint "
                              f"(--encoder ENCODER.pt); {hint}")
    path = Path(path)
    ckpt = load_torch(path, "encoder checkpoint", map_location, hint=hint)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an H-MGDM encoder checkpoint (kind {kind!r}); "
                              f"{hint}")
    if not isinstance(ckpt.get("version", 0), int):
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r} is not a "
                              "number; the file was not written by napari-higt or was edited")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {ckpt.get('version')} is newer "
                              f"than this napari-higt understands ({CHECKPOINT_VERSION})")
    try:
        cfg = HMGDMConfig.from_dict(ckpt["config"])
        cfg.validate()
        model = HMGDM(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid H-MGDM configuration in the checkpoint "
                              f"({exc})") from None
    try:
        want = entity_feature_dim(cfg.entity.get("features", "handcrafted"),
                                  int(cfg.entity.get("crop_size", 16)))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if want != cfg.in_dim:
        raise CheckpointError(f"{path}: config mismatch: the model takes {cfg.in_dim}-dim "
                              f"entities but its entity settings give {want}-dim ones")
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0][:300]
        raise CheckpointError(f"{path}: the weights do not match the checkpoint's "
                              f"configuration ({first})") from None
    model.to(map_location).eval()
    return model, ckpt
