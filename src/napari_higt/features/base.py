"""The feature-extractor protocol and the registry of extractors by name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from napari_higt.errors import FeatureError

__all__ = [
    "UnknownExtractorError",
    "FeatureExtractor",
    "register_extractor",
    "get_extractor",
    "available_extractors",
    "config_hash",
    "MODEL_FILE_OPTION",
]

#: The config option of each built-in extractor that takes a local model file.
MODEL_FILE_OPTION: dict[str, str] = {"cnn": "weights", "hmgdm": "encoder", "timm": "weights"}


class UnknownExtractorError(FeatureError, ValueError):
    """No extractor of that name is registered (the message lists the known ones)."""


@runtime_checkable
class FeatureExtractor(Protocol):
    """Turns a batch of RGB tiles into one feature vector per tile.

    ``name`` is the registry key, ``dim`` the output width, ``config`` a JSON-able dict of
    everything that changes the output (hashed into the feature file).
    """

    name: str
    dim: int
    config: dict

    def __call__(self, batch: np.ndarray) -> np.ndarray:  # (B,H,W,3) uint8 -> (B,dim) float32
        ...


_REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {}
# Extractors living in modules that are imported on first use (keeps imports light).
_LAZY: dict[str, str] = {
    "handcrafted": "napari_higt.features.handcrafted",
    "cnn": "napari_higt.features.cnn",
    "hmgdm": "napari_higt.features.hmgdm",
    "timm": "napari_higt.features.timm_extractor",
}


Factory = Callable[..., FeatureExtractor]


def register_extractor(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(**config) -> FeatureExtractor`` under ``name``."""

    def deco(factory: Callable[..., FeatureExtractor]) -> Callable[..., FeatureExtractor]:
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_lazy(name: str) -> None:
    mod = _LAZY.get(name)
    if mod is not None and name not in _REGISTRY:
        import importlib

        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def available_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor`."""
    for name in list(_LAZY):
        _load_lazy(name)
    return sorted(_REGISTRY)


def get_extractor(name: str, **config: Any) -> FeatureExtractor:
    """A new extractor ``name`` configured by ``config``.

    Raises
    ------
    UnknownExtractorError
        (a ``ValueError`` and a ``FeatureError``) Unknown name; the message lists the known ones.
    """
    _load_lazy(name)
    if name not in _REGISTRY:
        raise UnknownExtractorError(
            f"unknown feature extractor {name!r}; available: {', '.join(available_extractors())}"
        )
    return _REGISTRY[name](**config)


def config_hash(extractor: FeatureExtractor, **extra: Any) -> str:
    """Stable hash of an extractor's name, dim and config plus ``extra`` (tiling settings)."""
    payload = {"name": extractor.name, "dim": int(extractor.dim), "config": extractor.config,
               **extra}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
