"""Published pathology foundation encoders as ``timm`` architectures + preprocessing presets.

A preset says how to build the encoder (a timm architecture name and its keyword
arguments, always with ``pretrained=False``), how to prepare a tile for it (input size,
resize interpolation, centre-crop fraction, mean/std), which scale it was trained at (target
µm/px), which output it gives (``"cls"``: the class token, ``"mean"``: the mean of the patch
tokens, ``"cls+mean"``: both concatenated), its published width, and which weights file the
user must bring (nothing is downloaded; the model cards are gated).

Where the values come from (checked on 2026-11; cited so a reader can re-check them):

- UNI: https://huggingface.co/MahmoodLab/UNI -- its ``config.json`` (as mirrored on the hub:
  ``vit_large_patch16_224``, ``init_values``, ``dynamic_img_size``, ImageNet mean/std,
  ``global_pool: token``, 1024 features); 20x tiles (UNI paper, Chen et al., Nat Med 2024).
- UNI2-h: https://huggingface.co/MahmoodLab/UNI2-h -- the ``timm_kwargs`` of its card
  (ViT-H/14, 24 blocks, width 1536, SwiGLU-packed MLP ratio 2.66667 x 2, 8 register tokens,
  ``no_embed_class``), ImageNet mean/std, class token.
- Virchow2: https://huggingface.co/paige-ai/Virchow2 and arXiv:2408.00738 (ViT-H/14, 4
  register tokens, SwiGLU MLP ratio 5.3375, mixed-magnification training); the card's
  embedding is the class token concatenated with the mean of the patch tokens (the 4
  register tokens excluded), 2560 values.
- H-optimus-0: https://huggingface.co/bioptimus/H-optimus-0 -- card and ``config.json``:
  ``vit_giant_patch14_reg4_dinov2``, ``init_values=1e-5``, ``dynamic_img_size=False``,
  224 x 224 tiles "extracted at 0.5 microns per pixel", mean (0.707223, 0.578729, 0.703617),
  std (0.211883, 0.230117, 0.177517), class token, 1536 features.
- H-optimus-1: https://huggingface.co/bioptimus/H-optimus-1 (gated; same architecture and
  normalisation as H-optimus-0 per Bioptimus' release note and TRIDENT's loader).
- Prov-GigaPath tile encoder: https://huggingface.co/prov-gigapath/prov-gigapath and
  https://github.com/prov-gigapath/prov-gigapath -- ``vit_giant_patch14_dinov2`` with
  ``patch_size=16``, ``img_size=224``, 40 blocks, width 1536, ``mlp_ratio=5.33334``; tiles
  resized to 256 (bicubic) and centre-cropped to 224, ImageNet mean/std, class token.
- Phikon: https://huggingface.co/owkin/phikon -- ``config.json``: a Hugging Face
  ``ViTModel`` ViT-B/16 (hidden 768, 12 layers, ``layer_norm_eps=1e-12``), features
  ``last_hidden_state[:, 0, :]``; its keys are converted to timm's ``vit_base_patch16_224``.

Cross-checked against the loaders of TRIDENT (https://github.com/mahmoodlab/TRIDENT,
``trident/patch_encoder_models/load.py``), the peer tool whose file format ``--layout
trident`` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from napari_higt.errors import FeatureError

__all__ = ["EncoderPreset", "PRESETS", "get_preset", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
_HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
TOKENS = ("cls", "mean", "cls+mean")


@dataclass(frozen=True)
class EncoderPreset:
    """Architecture and preprocessing of one published encoder (see the module docstring).

    ``model_kwargs`` is JSON-able: layer classes are named (``"SwiGLUPacked"``, ``"SiLU"``)
    and resolved when the model is built; ``norm_eps`` becomes the LayerNorm epsilon.
    ``key_format`` is ``"timm"`` or ``"hf_vit"`` (a Hugging Face ``ViTModel`` state dict).
    """

    name: str
    arch: str
    model_kwargs: dict[str, Any]
    dim: int
    params_m: float  # published parameter count in millions, rounded (a construction check)
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    mpp: float = 0.5
    token: str = "cls"
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    precision: str = "float16"  # autocast dtype on CUDA
    key_format: str = "timm"
    weights_file: str = ""
    source: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what goes into a feature file's extractor config)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


_SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}

PRESETS: dict[str, EncoderPreset] = {p.name: p for p in (
    EncoderPreset(
        "uni", "vit_large_patch16_224",
        {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True},
        dim=1024, params_m=303,
        weights_file="pytorch_model.bin of https://huggingface.co/MahmoodLab/UNI",
        source="https://huggingface.co/MahmoodLab/UNI"),
    EncoderPreset(
        "uni2-h", "vit_giant_patch14_224",
        {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5,
         "embed_dim": 1536, "mlp_ratio": 2.66667 * 2, "no_embed_class": True, "reg_tokens": 8,
         "dynamic_img_size": True, **_SWIGLU},
        dim=1536, params_m=681, precision="bfloat16",
        weights_file="pytorch_model.bin of https://huggingface.co/MahmoodLab/UNI2-h",
        source="https://huggingface.co/MahmoodLab/UNI2-h"),
    EncoderPreset(
        "virchow2", "vit_huge_patch14_224",
        {"img_size": 224, "init_values": 1e-5, "reg_tokens": 4, "mlp_ratio": 5.3375,
         "global_pool": "", "dynamic_img_size": True, **_SWIGLU},
        dim=2560, params_m=632, token="cls+mean", interpolation="bicubic",
        weights_file="pytorch_model.bin of https://huggingface.co/paige-ai/Virchow2",
        source="https://huggingface.co/paige-ai/Virchow2",
        notes="trained on mixed magnifications (5x-40x); 0.5 µm/px is the usual choice"),
    EncoderPreset(
        "h-optimus-0", "vit_giant_patch14_reg4_dinov2",
        {"img_size": 224, "global_pool": "token", "init_values": 1e-5,
         "dynamic_img_size": False},
        dim=1536, params_m=1100, mean=_HOPTIMUS_MEAN, std=_HOPTIMUS_STD,
        weights_file="pytorch_model.bin of https://huggingface.co/bioptimus/H-optimus-0",
        source="https://huggingface.co/bioptimus/H-optimus-0"),
    EncoderPreset(
        "h-optimus-1", "vit_giant_patch14_reg4_dinov2",
        {"img_size": 224, "global_pool": "token", "init_values": 1e-5,
         "dynamic_img_size": False},
        dim=1536, params_m=1100, mean=_HOPTIMUS_MEAN, std=_HOPTIMUS_STD,
        weights_file="pytorch_model.bin of https://huggingface.co/bioptimus/H-optimus-1",
        source="https://huggingface.co/bioptimus/H-optimus-1"),
    EncoderPreset(
        "prov-gigapath", "vit_giant_patch14_dinov2",
        {"img_size": 224, "in_chans": 3, "patch_size": 16, "embed_dim": 1536, "depth": 40,
         "num_heads": 24, "mlp_ratio": 5.33334},
        dim=1536, params_m=1130, interpolation="bicubic", crop_pct=224 / 256,
        weights_file="pytorch_model.bin of https://huggingface.co/prov-gigapath/prov-gigapath",
        source="https://huggingface.co/prov-gigapath/prov-gigapath"),
    EncoderPreset(
        "phikon", "vit_base_patch16_224", {"img_size": 224, "norm_eps": 1e-12},
        dim=768, params_m=86, precision="float32", key_format="hf_vit",
        weights_file="model.safetensors (or pytorch_model.bin) of https://huggingface.co/owkin/phikon",
        source="https://huggingface.co/owkin/phikon"),
)}


def get_preset(name: str) -> EncoderPreset:
    """The preset ``name`` (case-insensitive; ``_`` and ``-`` are the same).

    Raises
    ------
    FeatureError
        Unknown name; the message lists the known ones.
    """
    key = str(name).lower().replace("_", "-")
    if key not in PRESETS:
        raise FeatureError(f"unknown encoder preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[key]
