"""``timm``: any timm architecture with weights from a LOCAL file (a preset or by name).

``get_extractor("timm", preset="uni", weights="pytorch_model.bin")`` or
``get_extractor("timm", arch="vit_small_patch16_224", weights="vits.safetensors")``.
The model is always built with ``pretrained=False``; the weights come only from the file
(`timm_weights.read_state_dict`) and must fit the architecture exactly, else the error lists
the missing / unexpected keys. Presets (`presets.PRESETS`) carry each published encoder's
architecture and preprocessing; explicit arguments override a preset's values.

A batch of uint8 tiles goes to the device once, is resized there (antialiased, the preset's
interpolation, optional centre crop) and normalised; on CUDA the model runs channels-last
under autocast (the preset's float16 / bfloat16), on the CPU in float32. The output token is
the class token, the mean of the patch tokens (register tokens excluded) or both; a
convolutional trunk gives its globally pooled features. ``config`` (hashed into the feature
file) names the architecture, the preset, the preprocessing and the file's SHA-1.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError
from napari_higt.features.base import register_extractor
from napari_higt.features.presets import IMAGENET_MEAN, IMAGENET_STD, TOKENS, get_preset

__all__ = ["TimmExtractor", "import_timm", "build_timm_model", "timm_extractor"]

_TV_OPS: list = []  # keeps the torchvision op schemas defined by `import_timm` alive


def _declare_torchvision_ops() -> None:
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_OPS.append(lib)


@functools.cache
def import_timm():
    """The ``timm`` module.

    timm imports torchvision's Python parts (transforms, ``FrozenBatchNorm2d``) but never
    its compiled detection ops. A torchvision whose compiled ops do not match the installed
    torch (a CUDA torchvision beside a CPU torch wheel) fails at import with "operator
    torchvision::nms does not exist"; in that one case the two op schemas torchvision
    registers fake kernels for are declared first, torchvision's Python parts import, and a
    warning says that ``torchvision.ops.nms`` will not run (this extractor never calls it).

    Raises
    ------
    FeatureError
        timm is not installed (the message says how to install it).
    """
    try:
        import timm
    except ModuleNotFoundError as exc:
        raise FeatureError(
            f"the 'timm' extractor needs the timm package ({exc.name} is missing): "
            "pip install 'napari-higt[timm]'") from None
    except RuntimeError as exc:
        if "torchvision::nms does not exist" not in str(exc):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm")]:
            del sys.modules[name]
        _declare_torchvision_ops()
        import timm

        warnings.warn("torchvision's compiled ops do not match this torch build; its Python "
                      "parts work, torchvision.ops.nms does not", RuntimeWarning, stacklevel=2)
    return timm


def _resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Named layer classes and ``norm_eps`` of a preset's JSON-able kwargs as objects."""
    import torch

    timm = import_timm()
    out = dict(kwargs)
    for key in ("mlp_layer", "act_layer"):
        if isinstance(out.get(key), str):
            name = out[key]
            obj = getattr(timm.layers, name, None) or getattr(torch.nn, name, None)
            if obj is None:
                raise FeatureError(f"unknown layer {name!r} for {key}")
            out[key] = obj
    if "norm_eps" in out:
        out["norm_layer"] = functools.partial(torch.nn.LayerNorm, eps=float(out.pop("norm_eps")))
    return out


def build_timm_model(arch: str, model_kwargs: dict[str, Any] | None = None,
                     device: str | None = None):
    """A timm model built with ``pretrained=False`` and no classifier (``num_classes=0``).

    ``device="meta"`` builds it without allocating weights (for checks of big encoders).

    Raises
    ------
    FeatureError
        Unknown architecture or arguments it does not take.
    """
    import torch

    timm = import_timm()
    kw = _resolve_kwargs(dict(model_kwargs or {}))
    kw.setdefault("num_classes", 0)
    if not timm.is_model(arch):
        raise FeatureError(f"unknown timm architecture {arch!r} (see timm.list_models())")
    try:
        with torch.device(device or "cpu"):
            model = timm.create_model(arch, pretrained=False, **kw)
    except (TypeError, ValueError, AssertionError) as exc:
        raise FeatureError(f"timm cannot build {arch!r} with {sorted(kw)}: {exc}") from None
    return model.eval()


def _is_vit(model) -> bool:
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks")


class TimmExtractor:
    """Callable ``(B, H, W, 3) uint8 -> (B, dim) float32``; see the module docstring."""

    name = "timm"

    def __init__(self, weights: str | Path | None = None, arch: str | None = None,
                 preset: str | None = None, token: str | None = None,
                 input_size: int | None = None, mean=None, std=None,
                 interpolation: str | None = None, crop_pct: float | None = None,
                 device: str = "auto", batch_size: int = 64, amp: bool = True,
                 model_kwargs: dict[str, Any] | None = None):
        p = get_preset(preset) if preset else None
        self.preset = p.name if p else None
        self.arch = arch or (p.arch if p else None)
        if not self.arch:
            raise FeatureError("the 'timm' extractor needs --preset NAME or --arch ARCH")
        if not weights:
            bring = f" ({p.weights_file})" if p else ""
            raise FeatureError(
                "the 'timm' extractor needs a local weights file (nothing is downloaded): give "
                f"--weights PATH{bring} or get_extractor('timm', weights=PATH, ...)")
        kwargs = dict(p.model_kwargs) if p and self.arch == p.arch else {}
        kwargs.update(model_kwargs or {})
        self.token = token or (p.token if p else "cls")
        if self.token not in TOKENS:
            raise FeatureError(f"token must be one of {TOKENS}, got {self.token!r}")
        self.input_size = int(input_size or (p.input_size if p else 224))
        self.mean = tuple(float(v) for v in (mean or (p.mean if p else IMAGENET_MEAN)))
        self.std = tuple(float(v) for v in (std or (p.std if p else IMAGENET_STD)))
        self.interpolation = interpolation or (p.interpolation if p else "bilinear")
        self.crop_pct = float(crop_pct or (p.crop_pct if p else 1.0))
        self.target_mpp = p.mpp if p else None
        self.batch_size = int(batch_size)
        from napari_higt.devices import resolve_device
        from napari_higt.features.timm_weights import fit_state_dict, read_state_dict
        from napari_higt.io import file_digest

        self.device = resolve_device(device)
        path = Path(weights).expanduser()
        model = build_timm_model(self.arch, kwargs)
        sd, dropped = fit_state_dict(read_state_dict(path), model, f"{path} ({self.arch})",
                                     p.key_format if p else "timm")
        model.load_state_dict(sd, strict=True)
        self._vit = _is_vit(model)
        if self.token != "cls" and not self._vit:
            raise FeatureError(f"{self.arch} has no tokens; use token='cls' (pooled features)")
        if self.token != "mean" and self._vit and getattr(model, "cls_token", None) is None:
            raise FeatureError(f"{self.arch} has no class token; use token='mean'")
        width = int(model.num_features)
        self.dim = 2 * width if self.token == "cls+mean" else width
        cuda = self.device.type == "cuda"
        self.amp_dtype = None
        if cuda and amp:
            import torch

            self.amp_dtype = getattr(torch, p.precision if p else "float16")
        self.model = model.to(self.device)
        if cuda:
            import torch

            self.model = self.model.to(memory_format=torch.channels_last)
        self.config = {
            "arch": self.arch, "preset": self.preset, "model_kwargs": kwargs,
            "weights": path.name, "weights_sha1": file_digest(path, 16),
            "dropped_keys": len(dropped), "token": self.token, "input_size": self.input_size,
            "mean": list(self.mean), "std": list(self.std),
            "interpolation": self.interpolation, "crop_pct": self.crop_pct,
            "target_mpp": self.target_mpp,
        }

    # ------------------------------------------------------------------ inference
    def _prepare(self, x):
        """uint8 (B, H, W, 3) on the device -> normalised float (B, 3, S, S)."""
        import torch
        import torch.nn.functional as F

        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        s = self.input_size
        big = int(round(s / self.crop_pct))
        if x.shape[-2:] != (big, big):
            x = F.interpolate(x, size=(big, big), mode=self.interpolation, antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        if big != s:
            o = (big - s) // 2
            x = x[..., o:o + s, o:o + s]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _embed(self, x):
        import torch

        feats = self.model.forward_features(x)
        if not self._vit:
            return self.model.forward_head(feats, pre_logits=True)
        npt = int(self.model.num_prefix_tokens)
        cls, patches = feats[:, 0], feats[:, npt:]
        if self.token == "cls":
            return cls
        if self.token == "mean":
            return patches.mean(1)
        return torch.cat([cls, patches.mean(1)], dim=-1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[-1] < 3 or batch.dtype != np.uint8:
            raise FeatureError(f"timm expects a (B, H, W, 3) uint8 batch, got {batch.shape} "
                               f"{batch.dtype}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        cuda = self.device.type == "cuda"
        outs = []
        with torch.inference_mode(), torch.autocast(
                "cuda", dtype=self.amp_dtype or torch.float16,
                enabled=cuda and self.amp_dtype is not None):
            for i in range(0, len(batch), self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(batch[i:i + self.batch_size, ..., :3]))
                if cuda:
                    t = t.pin_memory().to(self.device, non_blocking=True)
                outs.append(self._embed(self._prepare(t)).float().cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"TimmExtractor({self.preset or self.arch}, dim={self.dim}, {self.device})"


@register_extractor("timm")
def timm_extractor(**config) -> TimmExtractor:
    """Factory for the registry: ``get_extractor("timm", preset=..., weights=PATH, ...)``."""
    return TimmExtractor(**config)
