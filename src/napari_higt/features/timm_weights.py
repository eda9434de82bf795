"""Local weights files for timm models: read, unwrap, convert, and check that they fit.

``read_state_dict`` reads ``.safetensors`` (preferred: no code runs while loading) or a
PyTorch ``.pth`` / ``.bin`` / ``.pt`` state dict with ``torch.load(weights_only=True)``.
``fit_state_dict`` maps the file's keys onto a model's (training wrappers such as
``module.`` / ``backbone.`` / ``teacher.`` prefixes, Lightning ``state_dict`` nesting, a
Hugging Face ``ViTModel`` layout) and refuses, listing the keys, any file whose tensors do
not cover the model exactly: a half-loaded encoder gives plausible-looking wrong features.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from napari_higt.errors import FeatureError
from napari_higt.io import state_dict_mismatch, strip_wrapper_prefixes

__all__ = ["read_state_dict", "fit_state_dict", "hf_vit_to_timm", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_NESTS = ("state_dict", "model_state_dict", "model", "teacher", "module")
#: Keys of a checkpoint's own head or pooler: not part of a feature trunk, dropped by name.
_HEAD_PREFIXES = ("head.", "fc.", "classifier.", "pooler.", "head_drop.")


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of a local weights file, on the CPU.

    Raises
    ------
    FeatureError
        Missing file, unknown suffix, unreadable file, or no tensors in it.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FeatureError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise FeatureError(f"{path}: expected a {' / '.join(WEIGHT_SUFFIXES)} weights file")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path), device="cpu")
        else:
            from napari_higt.io import load_torch

            sd = load_torch(path, "weights file", error=FeatureError,
                            hint="use the model's .safetensors file or a plain state dict")
    except FeatureError:
        raise
    except Exception as exc:  # corrupt file, truncated download
        raise FeatureError(f"cannot read weights {path}: {type(exc).__name__}: {exc}") from None
    sd = _unnest(sd)
    if not sd:
        raise FeatureError(f"{path} holds no tensors (is it a state dict?)")
    return sd


def _unnest(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    while not any(hasattr(v, "shape") for v in obj.values()):
        inner = next((obj[k] for k in _NESTS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            return {}
        obj = inner
    return {k: v for k, v in obj.items() if hasattr(v, "shape")}


_HF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_RENAME = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
}


def hf_vit_to_timm(sd: dict[str, Any]) -> dict[str, Any]:
    """A Hugging Face ``ViTModel`` state dict in timm's ``VisionTransformer`` key layout.

    Query, key and value projections are stacked into timm's fused ``qkv``; the pooler is
    dropped (timm's feature trunk has none). Unknown keys are kept as they are, so that
    `fit_state_dict` lists them.
    """
    import torch

    sd = {k[len("vit."):] if k.startswith("vit.") else k: v for k, v in sd.items()}
    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for k, v in sd.items():
        if k.startswith("pooler."):
            continue
        if k in _HF_TOP:
            out[_HF_TOP[k]] = v
            continue
        m = _HF_BLOCK.match(k)
        if m is None:
            out[k] = v
            continue
        i, rest = m.groups()
        qm = re.match(r"^attention\.attention\.(query|key|value)\.(weight|bias)$", rest)
        if qm:
            qkv.setdefault((i, qm.group(2)), {})[qm.group(1)] = v
            continue
        for hf, tm in _HF_RENAME.items():
            if rest.startswith(hf + "."):
                out[f"blocks.{i}.{tm}{rest[len(hf):]}"] = v
                break
        else:
            out[k] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            for name, v in parts.items():
                out[f"encoder.layer.{i}.attention.attention.{name}.{kind}"] = v
            continue
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0)
    return out


def fit_state_dict(sd: dict[str, Any], model, what: str, key_format: str = "timm",
                   ) -> tuple[dict[str, Any], list[str]]:
    """Map ``sd`` onto ``model``'s keys and check that it fits exactly.

    Parameters
    ----------
    sd : tensors read from the weights file
    model : the ``nn.Module`` to load into
    what : how to name the file and the architecture in a message
    key_format : ``"timm"`` or ``"hf_vit"`` (converted with `hf_vit_to_timm`)

    Returns
    -------
    (state_dict, dropped)
        Tensors keyed like ``model.state_dict()``, and the checkpoint's own head / pooler
        keys that were left out.

    Raises
    ------
    FeatureError
        Keys missing from the file, keys the model does not have, or tensors of another
        shape; the message lists them (nothing is loaded).
    """
    target = model.state_dict()
    keys = set(target)
    if key_format == "hf_vit":
        sd = hf_vit_to_timm(strip_wrapper_prefixes(dict(sd), {"embeddings.cls_token"}))
    elif key_format != "timm":
        raise FeatureError(f"unknown key format {key_format!r}; expected 'timm' or 'hf_vit'")
    sd = strip_wrapper_prefixes(dict(sd), keys)
    dropped = sorted(k for k in sd if k not in keys and k.startswith(_HEAD_PREFIXES))
    sd = {k: v for k, v in sd.items() if k not in dropped}
    parts = state_dict_mismatch(target, sd)
    if parts:
        raise FeatureError(
            f"{what}: the weights do not fit the architecture: {'; '.join(parts)}. "
            "Nothing was loaded; check --arch / --preset against the file's model card")
    return sd, dropped
