"""Classifier checkpoints: a state dict plus a JSON-able config (``DESIGN.md``).

File content (``torch.save`` of a dict of plain types, so it loads with
``torch.load(..., weights_only=True)``)::

    format: "napari-higt-classifier", version: 1
    state_dict: model weights (CPU tensors)
    config: {"model": resolved build_model config, "class_names": [...],
             "extractor": name or None, "in_dim": int, "train": {...training settings}}
    card: the model card (`inference.card`: task, data, labels, scale, validation,
          demonstration flag, out-of-domain threshold); absent in older files, which load
          with an "unknown provenance" card
    state (training checkpoints only): epoch, optimiser, scaler, best epoch/AUC, history

Writes are atomic (temporary file + rename): an interrupted run never leaves half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from napari_higt.errors import CheckpointError
from napari_higt.io import state_dict_mismatch

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "model_from_checkpoint",
           "config_differences", "write_card"]

FORMAT = "napari-higt-classifier"
VERSION = 1


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config is not JSON-able: {exc}") from None


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, Any], config: dict[str, Any],
                    state: dict[str, Any] | None = None,
                    card: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically and return its path (``card``: a JSON-able model card,
    `inference.card.ModelCard.to_dict`).

    Raises
    ------
    CheckpointError
        A weight is NaN or infinite (training diverged): nothing is written, so no later
        prediction can come from such weights.
    StorageError
        Full disk or read-only folder (one line naming the folder; nothing is written).
    """
    import torch

    from napari_higt.io import save_torch

    bad = [k for k, v in state_dict.items()
           if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"not writing {path}: the weights hold NaN or infinite values ({bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "") + "); training diverged, "
            "try a lower --lr or check the features for extreme values")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": _jsonable(config),
    }
    if card is not None:
        payload["card"] = _jsonable(card)
    if state is not None:
        payload["state"] = state
    return save_torch(path, payload, f"checkpoint {Path(path).name}")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, or not a napari-higt classifier checkpoint.
    """
    from napari_higt.io import load_torch

    path = Path(path)
    ckpt = load_torch(path, "classifier checkpoint", map_location,
                      hint="make one with `napari-higt train`")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a napari-higt classifier checkpoint (made by `napari-higt train`); "
            "an H-MGDM encoder checkpoint goes to `preprocess --extractor hmgdm` instead"
        )
    version = ckpt.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint version {version!r} is not a number; the "
                              "file was not written by napari-higt or was edited")
    if version > VERSION:
        raise CheckpointError(f"{path} was written by a newer napari-higt (checkpoint version "
                              f"{version}); upgrade napari-higt")
    for key in ("state_dict", "config"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(f"{path} lacks '{key}'; the file is incomplete")
    _check_config(path, ckpt["config"])
    from napari_higt.inference.card import ModelCard

    if ckpt.get("card") is not None and not isinstance(ckpt["card"], dict):
        raise CheckpointError(f"{path}: the checkpoint's model card is not a mapping; the "
                              "file was edited")
    ckpt["card"] = ModelCard.from_dict(ckpt.get("card"), ckpt["config"]).to_dict()
    return ckpt


def write_card(path: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Replace the model card of the checkpoint at ``path`` (weights untouched), atomically.

    Raises
    ------
    CheckpointError
        ``path`` is not a readable classifier checkpoint.
    """
    from napari_higt.io import load_torch, save_torch

    load_checkpoint(path)  # refuses anything that is not a classifier checkpoint
    raw = load_torch(Path(path), "napari-higt classifier checkpoint")
    raw["card"] = _jsonable(card)
    return save_torch(path, raw, f"checkpoint {Path(path).name}")


def _check_config(path: Path, cfg: dict[str, Any]) -> None:
    """The keys every reader of a classifier checkpoint relies on, present and consistent."""
    names = cfg.get("class_names")
    if (not isinstance(names, list) or len(names) < 2
            or not all(isinstance(c, (str, int, float)) for c in names)):
        raise CheckpointError(f"{path}: the checkpoint's config has no list of class names "
                              f"(got {names!r}); the file is incomplete or was edited")
    if not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"{path}: the checkpoint's config has no model settings")
    n_out = cfg["model"].get("n_classes")
    if n_out is not None and n_out != len(names):
        raise CheckpointError(
            f"{path}: the model has {n_out} outputs but the checkpoint names {len(names)} "
            f"classes ({', '.join(map(str, names))}); the file is inconsistent")


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
    problem = state_dict_mismatch(model.state_dict(), ckpt["state_dict"], n=3)
    if problem:
        raise CheckpointError(
            "the checkpoint's weights do not fit its model config (was it written by another "
            f"version of napari-higt?): {'; '.join(problem)}")
    model.load_state_dict(ckpt["state_dict"], strict=True)
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
