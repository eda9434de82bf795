"""Patch feature extractors (a registry by name) and the per-slide feature store.

>>> from napari_higt.features import get_extractor, available_extractors
>>> ext = get_extractor("handcrafted")          # doctest: +SKIP
>>> ext(batch_uint8_BHW3).shape == (B, ext.dim)  # doctest: +SKIP

``handcrafted`` (64-dim colour/texture, CPU), ``cnn`` (DenseNet-121 / ResNet-50 trunk from a
local weights file), ``hmgdm`` (the H-MGDM encoder) and ``timm`` (any timm architecture or a
published pathology encoder preset, `features.presets`, from a local weights file) register
themselves on first use; `features.stain` normalises tiles before any of them.
``FeatureStore`` reads and writes the ``<slide_id>.h5`` files (`features.trident` the
TRIDENT layout); `preprocess_slide` (in ``napari_higt.features.pipeline``) turns one slide
into one such file.
"""

from napari_higt.features.base import (
    FeatureExtractor,
    UnknownExtractorError,
    available_extractors,
    config_hash,
    get_extractor,
    register_extractor,
)
from napari_higt.features.store import FeatureStore, StoredFeatures, read_graph, source_hash

__all__ = [
    "FeatureExtractor",
    "FeatureStore",
    "StoredFeatures",
    "UnknownExtractorError",
    "available_extractors",
    "config_hash",
    "get_extractor",
    "read_graph",
    "preprocess_slide",
    "register_extractor",
    "source_hash",
]


def __getattr__(name):  # lazy: the pipeline imports the slide reader
    if name == "preprocess_slide":
        from napari_higt.features.pipeline import preprocess_slide

        return preprocess_slide
    raise AttributeError(name)
