"""HIGT and baseline models over the hierarchical slide graph (and, for the MIL models, over
bags of features without a graph: ``models/bag.py``).

``build_model(config)`` builds any of them from a JSON-able dict; every model's ``forward``
takes a PyG ``Data``/``Batch`` (fields in ``docs/contracts.md``) and returns a
:class:`HIGTOutput` whose per-node tensors follow the input node order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from napari_higt.devices import cpu_heap_blocks

# Importing a model module registers its models; HIGT first, so it is the default model.
from napari_higt.models.higt import HIGTOutput
from napari_higt.models import baselines as _baselines  # noqa: E402,F401,I001
from napari_higt.models import clam, dsmil, h2mil, transmil  # noqa: E402,F401,I001
from napari_higt.models.registry import PRESETS, model_entry, register_model, registered_models

__all__ = ["HIGTOutput", "build_model", "resolve_config", "DEFAULT_CONFIG", "PRESETS",
           "count_parameters", "register_model", "registered_models", "needs_graph", "predict"]


def _default_config() -> dict[str, Any]:
    """Every key `build_model` accepts, with the default of the first model that takes it."""
    out: dict[str, Any] = {"model": registered_models()[0]}
    for name in registered_models():
        for k, v in model_entry(name).defaults.items():
            out.setdefault(k, v)
    out["preset"] = "paper"
    return out


#: Defaults of every key build_model accepts (JSON-able). preset="official" changes some.
DEFAULT_CONFIG: dict[str, Any] = _default_config()

_CHOICES = {
    "conv": ("raconv+", "raconv"),
    "attention": ("separable", "full"),
    "interaction": ("bi", "r2p"),
    "r2p_mode": ("add", "average"),
    "preset": tuple(PRESETS),
}
_POS_INT = ("in_dim", "n_classes", "hidden", "patch_seeds", "heads", "full_heads", "ffn_ratio",
            "k_sample", "query")
_NONNEG_INT = ("n_blocks", "block_layers")
_RATES = ("dropout", "attn_dropout", "gnn_dropout", "inst_weight")


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` and fill in defaults (preset first, then explicit keys).

    Raises
    ------
    ValueError
        On unknown keys, missing ``in_dim``/``n_classes`` or values out of range; the message
        names the key and what is allowed.
    """
    if not isinstance(config, dict):
        raise ValueError(f"model config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(
            f"unknown model config key(s) {unknown}; allowed: {sorted(DEFAULT_CONFIG)}"
        )
    preset = config.get("preset", "paper")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    entry = model_entry(config.get("model", DEFAULT_CONFIG["model"]))
    cfg = {**DEFAULT_CONFIG, **entry.defaults, **PRESETS[preset], **config}
    for key, allowed in _CHOICES.items():
        if cfg[key] not in allowed:
            raise ValueError(f"{key} must be one of {list(allowed)}, got {cfg[key]!r}")
    for key in ("in_dim", "n_classes"):
        if cfg[key] is None:
            raise ValueError(f"model config needs {key!r} (an int >= 1)")
    for key in _POS_INT + _NONNEG_INT:
        v = cfg[key]
        low = 1 if key in _POS_INT else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{key} must be an int >= {low}, got {v!r}")
    for key in _RATES:
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"{key} must be a number in [0, 1), got {v!r}")
    for key in ("fusion", "self_loops", "gnn_checkpoint"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"{key} must be true or false, got {cfg[key]!r}")
    ratios = cfg["pool_ratios"]
    if (
        not isinstance(ratios, (list, tuple))
        or not ratios
        or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r <= 0 for r in ratios)
    ):
        raise ValueError(f"pool_ratios must be a non-empty list of numbers > 0, got {ratios!r}")
    cfg["pool_ratios"] = [float(r) if r < 1 else int(r) if float(r).is_integer() else float(r)
                          for r in ratios]
    if cfg["hidden"] % cfg["heads"]:
        raise ValueError(f"hidden={cfg['hidden']} must be divisible by heads={cfg['heads']}")
    if cfg["attention"] == "full" and cfg["hidden"] % cfg["full_heads"]:
        raise ValueError(
            f"hidden={cfg['hidden']} must be divisible by full_heads={cfg['full_heads']}"
        )
    return cfg


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build a model from a JSON-able config dict.

    Parameters
    ----------
    config : dict
        Needs ``in_dim`` and ``n_classes``; any key of :data:`DEFAULT_CONFIG` may be given
        (``model`` = a registered name: ``higt`` | ``abmil`` | ``mean`` | ``clam_sb`` |
        ``dsmil`` | ``transmil`` | ``h2mil``; for HIGT ``conv``, ``self_loops``,
        ``attention``, ``interaction``, ``fusion``, ``hidden``, ``pool_ratios``, ``preset`` =
        ``paper`` | ``official`` ...). Keys that a baseline does not use are accepted and
        ignored.

    Returns
    -------
    torch.nn.Module
        ``model(batch) -> HIGTOutput``; the resolved config is in ``model.config``.

    Raises
    ------
    ValueError
        For unknown keys or bad values.
    """
    cfg = resolve_config(config)
    model = model_entry(cfg["model"]).build(cfg)
    model.config = cfg
    return model


def needs_graph(name: str) -> bool:
    """True for the models that read the slide graph (positions, parents, edges): they
    cannot train on bags without coordinates. A model class says so with ``needs_graph``."""
    return bool(getattr(model_entry(name).cls, "needs_graph", False))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@cpu_heap_blocks()
def predict(model: nn.Module, data: object) -> HIGTOutput:
    """The model's output for prediction: eval mode (restored after), no autograd at all.

    Under ``torch.inference_mode`` nothing is recorded or kept for a backward pass, and the
    models skip what only training needs (HIGT: the patterns of its backward products).
    Large CPU blocks come from the heap meanwhile (:func:`napari_higt.devices.cpu_heap_blocks`).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return model(data)
    finally:
        model.train(was_training)
