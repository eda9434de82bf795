"""Classifier checkpoints: a state dict plus a JSON-able config (``DESIGN.md``).

File content (``torch.save`` of a dict of plain types, so it loads with
``torch.load(..., weights_only=True)``)::

    format: "napari-higt-classifier", version: 1
    state_dict: model weights (CPU tensors)
    config: {"model": resolved build_model config, "class_names": [...],
             "extractor": name or None, "in_dim": int, "train": {...training settings}}
    state (training checkpoints only): epoch, optimiser, scaler, best epoch/AUC, history

Writes are atomic (temporary file + rename): an interrupted run never leaves half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from napari_higt.errors import CheckpointError

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "model_from_checkpoint",
           "config_differences"]

FORMAT = "napari-higt-classifier"
VERSION = 1


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config is not JSON-able: {exc}") from None


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, Any], config: dict[str, Any],
                    state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically and return its path."""
    import torch

    from napari_higt.io import atomic_path

    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": _jsonable(config),
    }
    if state is not None:
        payload["state"] = state
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, or not a napari-higt classifier checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, foreign objects
        raise CheckpointError(
            f"{path} cannot be read as a napari-higt checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a napari-higt classifier checkpoint (made by `napari-higt train`); "
            "an H-MGDM encoder checkpoint goes to `preprocess --extractor hmgdm` instead"
        )
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer napari-higt (checkpoint version "
                              f"{ckpt.get('version')}); upgrade napari-higt")
    for key in ("state_dict", "config"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks '{key}'; the file is incomplete")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any] | str | os.PathLike, map_location: Any = "cpu"):
    """Build the model of a checkpoint (dict or path) and load its weights; eval mode."""
    from napari_higt.models import build_model

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt, map_location)
    cfg = ckpt["config"]
    try:
        model = build_model(dict(cfg["model"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint's model config cannot be built here: {exc}") from None
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            "the checkpoint's weights do not fit its model config (was it written by another "
            f"version of napari-higt?): {str(exc).splitlines()[0]}"
        ) from None
    return model.eval()


def config_differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Human-readable list of the keys whose values differ (``a.b: saved != current``)."""
    out: list[str] = []
    if isinstance(saved, dict) and isinstance(current, dict):
        for k in sorted(set(saved) | set(current), key=str):
            name = f"{prefix}{k}"
            if k not in saved:
                out.append(f"{name}: absent in the checkpoint, {current[k]!r} now")
            elif k not in current:
                out.append(f"{name}: {saved[k]!r} in the checkpoint, absent now")
            else:
                out.extend(config_differences(saved[k], current[k], name + "."))
        return out
    if _norm(saved) != _norm(current):
        out.append(f"{prefix.rstrip('.')}: {saved!r} in the checkpoint, {current!r} now")
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
