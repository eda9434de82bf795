"""HIGT and baseline models over the hierarchical slide graph.

``build_model(config)`` builds any of them from a JSON-able dict; every model's ``forward``
takes a PyG ``Data``/``Batch`` (fields in ``docs/contracts.md``) and returns a
:class:`HIGTOutput` whose per-node tensors follow the input node order.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from napari_higt.models.higt import HIGTOutput

__all__ = ["HIGTOutput", "build_model", "resolve_config", "DEFAULT_CONFIG", "count_parameters"]

# Defaults of every key build_model accepts (JSON-able). preset="official" changes some.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": "higt",
    "in_dim": None,
    "n_classes": None,
    "hidden": 256,
    "conv": "raconv+",
    "self_loops": True,
    "attention": "separable",
    "interaction": "bi",
    "r2p_mode": "add",
    "fusion": True,
    "pool_ratios": [0.5, 0.5],
    "patch_seeds": 4,
    "n_blocks": 3,
    "block_layers": 2,
    "heads": 1,
    "full_heads": 4,
    "dropout": 0.1,
    "attn_dropout": 0.0,
    "gnn_dropout": 0.3,
    "ffn_ratio": 2,
    "preset": "paper",
}

# The official HKU-MedAI/HIGT code's behaviour where it differs from the paper: one-way
# region -> patch interaction averaged, GAT-style RAConv, second stage pooling to 5 regions
# (x up to 4 patches each), and no self loops in RAConv.
#
# self_loops=True in the "paper" preset is OUR deviation from the spec ("no self loops are
# added by RAConv"), which neither the paper nor the official code states otherwise: RAConv is
# a GAT, and GAT/GATv2 add a self loop so that a node's own features reach its next
# representation. Without it a patch's features reach only its neighbours, and HIGT could not
# learn (nor explain) a slide label carried by a single patch (tests/models/test_models.py,
# test_higt_planted_patch_is_top_ranked). The official preset keeps the spec's behaviour.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "official": {
        "conv": "raconv",
        "self_loops": False,
        "interaction": "r2p",
        "r2p_mode": "average",
        "pool_ratios": [0.5, 5],
    },
}

_CHOICES = {
    "model": ("higt", "abmil", "mean"),
    "conv": ("raconv+", "raconv"),
    "attention": ("separable", "full"),
    "interaction": ("bi", "r2p"),
    "r2p_mode": ("add", "average"),
    "preset": tuple(PRESETS),
}
_POS_INT = ("in_dim", "n_classes", "hidden", "patch_seeds", "heads", "full_heads", "ffn_ratio")
_NONNEG_INT = ("n_blocks", "block_layers")
_RATES = ("dropout", "attn_dropout", "gnn_dropout")


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
    cfg = {**DEFAULT_CONFIG, **PRESETS[preset], **config}
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
    for key in ("fusion", "self_loops"):
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
        (``model`` = ``higt`` | ``abmil`` | ``mean``; for HIGT ``conv``, ``self_loops``,
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
    from napari_higt.models.baselines import ABMIL, MeanMIL
    from napari_higt.models.higt import HIGT

    cfg = resolve_config(config)
    if cfg["model"] == "higt":
        model: nn.Module = HIGT(
            in_dim=cfg["in_dim"], n_classes=cfg["n_classes"], hidden=cfg["hidden"],
            conv=cfg["conv"], self_loops=cfg["self_loops"], attention=cfg["attention"],
            interaction=cfg["interaction"],
            r2p_mode=cfg["r2p_mode"], fusion=cfg["fusion"], pool_ratios=cfg["pool_ratios"],
            patch_seeds=cfg["patch_seeds"], n_blocks=cfg["n_blocks"],
            block_layers=cfg["block_layers"], heads=cfg["heads"], full_heads=cfg["full_heads"],
            dropout=cfg["dropout"], attn_dropout=cfg["attn_dropout"],
            gnn_dropout=cfg["gnn_dropout"], ffn_ratio=cfg["ffn_ratio"],
        )
    elif cfg["model"] == "abmil":
        model = ABMIL(cfg["in_dim"], cfg["n_classes"], cfg["hidden"], cfg["dropout"])
    else:
        model = MeanMIL(cfg["in_dim"], cfg["n_classes"], cfg["hidden"], cfg["dropout"])
    model.config = cfg
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
