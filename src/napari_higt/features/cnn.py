"""``cnn``: a DenseNet-121 or ResNet-50 trunk with weights from a LOCAL file, global-pooled.

The two architectures are re-implemented here with torchvision's module layout, so a
torchvision-format state dict (``torchvision.models.densenet121().state_dict()``, KimiaNet's
DenseNet-121 weights, ``resnet50`` checkpoints) loads without torchvision installed. Common
wrappers are undone when loading: ``module.`` / ``model.`` / ``backbone.`` prefixes, Lightning
``state_dict`` nesting, and the old DenseNet key style (``norm.1`` -> ``norm1``). Nothing is
ever downloaded.

Output: global average pool of the last feature map, 1024 values (DenseNet-121) or 2048
(ResNet-50). Tiles are resized (antialiased) to ``input_size`` and normalised with the
ImageNet mean/std; inference runs on CUDA when available (``device="auto"``), else CPU.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from napari_higt.errors import FeatureError
from napari_higt.features.base import register_extractor
from napari_higt.io import file_digest, strip_wrapper_prefixes

__all__ = ["CNNExtractor", "build_trunk", "ARCH_DIMS"]

ARCH_DIMS = {"densenet121": 1024, "resnet50": 2048}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _torch():
    import torch
    from torch import nn

    return torch, nn


# ---------------------------------------------------------------------------- ResNet-50
def _resnet50():
    torch, nn = _torch()

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + idt)

    class ResNet50(nn.Module):
        dim = 2048

        def __init__(self, num_classes=1000):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._layer(64, 3)
            self.layer2 = self._layer(128, 4, stride=2)
            self.layer3 = self._layer(256, 6, stride=2)
            self.layer4 = self._layer(512, 3, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def _layer(self, planes, blocks, stride=1):
            down = None
            if stride != 1 or self.inplanes != planes * 4:
                down = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * 4),
                )
            layers = [Bottleneck(self.inplanes, planes, stride, down)]
            self.inplanes = planes * 4
            layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward_features(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(self.avgpool(x), 1)

        def forward(self, x):
            return self.fc(self.forward_features(x))

    return ResNet50()


# ---------------------------------------------------------------------------- DenseNet-121
def _densenet121():
    torch, nn = _torch()
    import torch.nn.functional as F

    class DenseLayer(nn.Module):
        def __init__(self, cin, growth=32, bn_size=4):
            super().__init__()
            self.norm1 = nn.BatchNorm2d(cin)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(bn_size * growth)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, feats):
            x = torch.cat(feats, 1)
            x = self.conv1(self.relu1(self.norm1(x)))
            return self.conv2(self.relu2(self.norm2(x)))

    class DenseBlock(nn.ModuleDict):
        def __init__(self, n, cin, growth=32):
            super().__init__()
            for i in range(n):
                self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth))

        def forward(self, x):
            feats = [x]
            for layer in self.values():
                feats.append(layer(feats))
            return torch.cat(feats, 1)

    class Transition(nn.Sequential):
        def __init__(self, cin, cout):
            super().__init__()
            self.add_module("norm", nn.BatchNorm2d(cin))
            self.add_module("relu", nn.ReLU(inplace=True))
            self.add_module("conv", nn.Conv2d(cin, cout, 1, bias=False))
            self.add_module("pool", nn.AvgPool2d(2, stride=2))

    class DenseNet121(nn.Module):
        dim = 1024

        def __init__(self, num_classes=1000):
            super().__init__()
            mods = OrderedDict([
                ("conv0", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(64)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(3, stride=2, padding=1)),
            ])
            c = 64
            for i, n in enumerate((6, 12, 24, 16)):
                mods[f"denseblock{i + 1}"] = DenseBlock(n, c)
                c += n * 32
                if i != 3:
                    mods[f"transition{i + 1}"] = Transition(c, c // 2)
                    c //= 2
            mods["norm5"] = nn.BatchNorm2d(c)
            self.features = nn.Sequential(mods)
            self.classifier = nn.Linear(c, num_classes)

        def forward_features(self, x):
            x = F.relu(self.features(x))
            return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

        def forward(self, x):
            return self.classifier(self.forward_features(x))

    return DenseNet121()


def build_trunk(arch: str):
    """A randomly initialised ``densenet121`` or ``resnet50`` with torchvision's key layout."""
    if arch == "densenet121":
        return _densenet121()
    if arch == "resnet50":
        return _resnet50()
    raise FeatureError(f"unknown cnn arch {arch!r}; choose one of {sorted(ARCH_DIMS)}")


# ---------------------------------------------------------------------------- loading
_OLD_DENSE = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_HEADS = ("fc.", "classifier.")


def _normalise_keys(sd: dict, model_keys: set[str]) -> dict:
    """Map a checkpoint's keys onto the trunk's (prefixes, nesting, old DenseNet style)."""
    for nest in ("state_dict", "model_state_dict", "model"):
        if isinstance(sd.get(nest), dict) and not any(hasattr(v, "shape") for v in sd.values()):
            sd = sd[nest]
    out = {}
    for k, v in sd.items():
        if not hasattr(v, "shape"):
            continue
        m = _OLD_DENSE.match(k)
        if m:
            k = m.group(1) + m.group(2)
        out[k] = v
    out = strip_wrapper_prefixes(out, model_keys)
    if not set(out) & model_keys:
        # keys like "model.0.conv0.weight" (features wrapped in a Sequential)
        stripped = {re.sub(r"^[a-z_]+\.\d+\.", "features.", k): v for k, v in out.items()}
        if set(stripped) & model_keys:
            out = stripped
    return out


class CNNExtractor:
    """DenseNet-121 / ResNet-50 trunk from a local weights file; see the module docstring."""

    name = "cnn"

    def __init__(self, weights: str | Path | None = None, arch: str = "densenet121",
                 input_size: int = 224, device: str = "auto", batch_size: int = 64):
        if arch not in ARCH_DIMS:
            raise FeatureError(f"unknown cnn arch {arch!r}; choose one of {sorted(ARCH_DIMS)}")
        if not weights:
            raise FeatureError(
                "the 'cnn' extractor needs a local weights file (nothing is downloaded): give "
                "--weights PATH on the command line or get_extractor('cnn', weights=PATH), "
                f"e.g. KimiaNet's DenseNet-121 weights or a torchvision {arch} state dict"
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FeatureError(f"cnn weights file not found: {path}")
        torch, _ = _torch()
        self.arch = arch
        self.dim = ARCH_DIMS[arch]
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        from napari_higt.devices import resolve_device

        self.device = resolve_device(device)
        model = build_trunk(arch)
        model_keys = set(model.state_dict())
        from napari_higt.io import load_torch

        sd = load_torch(path, "cnn weights file", error=FeatureError,
                        hint="expected a PyTorch state dict (torch.save(model.state_dict()))")
        if not isinstance(sd, dict):
            raise FeatureError(f"{path} does not hold a state dict (got {type(sd).__name__})")
        sd = _normalise_keys(sd, model_keys)
        sd = {k: v for k, v in sd.items() if not k.startswith(_HEADS)}
        trunk_keys = {k for k in model_keys if not k.startswith(_HEADS)}
        missing = sorted(trunk_keys - set(sd))
        if missing:
            raise FeatureError(
                f"{path} does not fit a {arch} trunk: {len(missing)} weights missing "
                f"(e.g. {', '.join(missing[:3])}); is it the right --arch?"
            )
        try:
            model.load_state_dict(sd, strict=False)
        except RuntimeError as exc:
            raise FeatureError(f"{path} does not fit a {arch} trunk: {exc}") from None
        self.model = model.eval().to(self.device)
        self.config = {
            "arch": arch, "weights": path.name, "weights_sha1": file_digest(path, 16),
            "input_size": self.input_size, "normalize": "imagenet",
        }

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch, _ = _torch()
        import torch.nn.functional as F

        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected a (B, H, W, 3) uint8 batch, got shape {batch.shape}")
        outs = []
        mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            for i in range(0, len(batch), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(batch[i:i + self.batch_size]))
                x = x.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                if x.shape[-2:] != (self.input_size, self.input_size):
                    x = F.interpolate(x, size=(self.input_size, self.input_size),
                                      mode="bilinear", align_corners=False, antialias=True)
                x = (x - mean) / std
                outs.append(self.model.forward_features(x).float().cpu().numpy())
        if not outs:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)


@register_extractor("cnn")
def _make_cnn(**config) -> CNNExtractor:
    return CNNExtractor(**config)
