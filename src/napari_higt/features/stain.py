"""Stain normalisation of RGB tiles before feature extraction (Macenko, Reinhard; torchstain).

``StainNormalizer("macenko")`` is fitted once on a reference tile -- by default
``sample_data/stain_reference.png``, a 256 px H&E crop of the shipped CMU-1 sample (see
``sample_data/SOURCES.md``) -- and then maps every tile onto the reference's stain
appearance, one tile at a time (Macenko estimates each tile's own stain vectors). It uses
torchstain's torch backend; Reinhard's final LAB -> RGB step is done here with torchstain's
own colour functions so the result is clamped before it becomes uint8.

A tile is normalised only when it holds enough H&E-like stain: at least ``min_stain`` of its
pixels absorb in every channel (optical density above ``beta``, Macenko's transparency
threshold) and absorb green at least as much as red, which H&E does and blue / green pen ink
does not. Background, pen marks and tiles the method fails on pass through unchanged and
are counted (`StainNormalizer.passed`), never an error.

`with_stain` wraps an extractor so that its batches are normalised first; the wrapper keeps
the extractor's name and width and adds the normaliser's ``config`` (method, reference
digest, thresholds) to the extractor's, so the feature file's config hash changes with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import FeatureError

__all__ = ["StainNormalizer", "StainNormalizedExtractor", "with_stain", "stain_fraction",
           "pass_through_note", "METHODS", "DEFAULT_REFERENCE"]

METHODS = ("macenko", "reinhard")
DEFAULT_REFERENCE = "stain_reference.png"
_IO = 240.0  # transmitted light intensity (torchstain's and Macenko's default)


def stain_fraction(tile: np.ndarray, beta: float = 0.15) -> float:
    """Fraction of a tile's pixels that absorb like H&E (see the module docstring)."""
    rgb = np.asarray(tile)[..., :3].astype(np.float32)
    od = -np.log((rgb + 1.0) / _IO)
    stained = (od > beta).all(-1) & (od[..., 1] >= od[..., 0])
    return float(stained.mean()) if stained.size else 0.0


def _load_reference(reference) -> tuple[np.ndarray, str]:
    if reference is None:
        from napari_higt.datasets import sample_path

        try:
            reference = sample_path(DEFAULT_REFERENCE)
        except FileNotFoundError:
            raise FeatureError(
                f"the default stain reference ({DEFAULT_REFERENCE} in sample_data/) is not "
                "here; give a reference tile with --stain-reference FILE") from None
    if isinstance(reference, (str, Path)):
        from PIL import Image

        path = Path(reference).expanduser()
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB")), path.name
        except (OSError, ValueError) as exc:
            raise FeatureError(f"cannot read stain reference {path}: {exc}") from None
    arr = np.asarray(reference)
    if arr.ndim != 3 or arr.shape[-1] < 3 or arr.dtype != np.uint8:
        raise FeatureError(f"a stain reference must be an RGB uint8 image, got {arr.shape} "
                           f"{arr.dtype}")
    return arr[..., :3], "array"


class StainNormalizer:
    """Per-tile Macenko or Reinhard normalisation onto a reference tile.

    Parameters
    ----------
    method : ``"macenko"`` or ``"reinhard"``
    reference : path of an RGB image, an (H, W, 3) uint8 array, or None for the shipped one
    min_stain : least fraction of H&E-like pixels for a tile to be normalised (0.1)
    beta : optical-density threshold of a stained pixel (0.15)

    Attributes
    ----------
    config : JSON-able settings, recorded in the feature file and its hash
    seen, passed : tiles processed, and tiles that passed through unchanged
    """

    def __init__(self, method: str = "macenko", reference=None, min_stain: float = 0.1,
                 beta: float = 0.15):
        import hashlib

        import torch

        method = str(method).lower()
        if method not in METHODS:
            raise FeatureError(f"unknown stain method {method!r}; choose {', '.join(METHODS)} "
                               "or none")
        try:
            from torchstain.torch.normalizers import (TorchMacenkoNormalizer,
                                                      TorchReinhardNormalizer)
        except ModuleNotFoundError:
            raise FeatureError("stain normalisation needs torchstain: pip install torchstain"
                               ) from None
        ref, ref_name = _load_reference(reference)
        if stain_fraction(ref, beta) < max(min_stain, 0.2):
            raise FeatureError(f"the stain reference {ref_name} holds too little H&E stain "
                               f"({stain_fraction(ref, beta):.0%} of its pixels); choose a "
                               "tissue-rich tile")
        self.method, self.min_stain, self.beta = method, float(min_stain), float(beta)
        self._norm = (TorchMacenkoNormalizer() if method == "macenko"
                      else TorchReinhardNormalizer())
        with torch.no_grad():
            t = torch.from_numpy(np.array(ref, dtype=np.uint8)).permute(2, 0, 1)
            if method == "macenko":
                self._norm.fit(t, Io=_IO, beta=self.beta)
            else:
                self._norm.fit(t)
        self.seen = 0
        self.passed = 0
        self.config: dict[str, Any] = {
            "method": method, "reference": ref_name,
            "reference_sha1": hashlib.sha1(np.ascontiguousarray(ref).tobytes()).hexdigest()[:16],
            "min_stain": self.min_stain, "beta": self.beta, "Io": _IO,
        }

    def _reinhard(self, t):
        import torch
        from torchstain.torch.utils import (get_mean_std, lab2rgb, lab_merge, lab_split,
                                            rgb2lab, standardize)

        labs = lab_split(rgb2lab(t.float() / 255.0))
        out = []
        for x, mu_t, sd_t in zip(labs, self._norm.target_means, self._norm.target_stds):
            mu, sd = get_mean_std(x)
            out.append(standardize(x, mu, torch.clamp(sd, min=1e-6)) * sd_t + mu_t)
        return lab2rgb(lab_merge(*out)) * 255.0  # (H, W, 3), clamped to [0, 255]

    def normalize_tile(self, tile: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(tile', True)`` normalised, or ``(tile, False)`` passed through unchanged."""
        import torch

        tile = np.asarray(tile)
        if stain_fraction(tile, self.beta) < self.min_stain:
            return tile, False
        t = torch.from_numpy(np.array(tile[..., :3], dtype=np.uint8)).permute(2, 0, 1)
        try:
            with torch.no_grad():
                if self.method == "macenko":
                    out, _, _ = self._norm.normalize(t, Io=_IO, beta=self.beta, stains=False)
                else:
                    out = self._reinhard(t)
                out = out.float()
        except (RuntimeError, ValueError, IndexError):  # a degenerate stain estimate
            return tile, False
        if not bool(torch.isfinite(out).all()):
            return tile, False
        res = out.clamp_(0, 255).round_().to(torch.uint8).numpy()
        if tile.shape[-1] > 3:
            res = np.concatenate([res, tile[..., 3:]], axis=-1)
        return res, True

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Normalise a (B, H, W, 3) uint8 batch tile by tile; counts what passed through."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.dtype != np.uint8:
            raise FeatureError(f"stain normalisation expects a (B, H, W, 3) uint8 batch, got "
                               f"{batch.shape} {batch.dtype}")
        out = np.empty_like(batch)
        for i, tile in enumerate(batch):
            out[i], ok = self.normalize_tile(tile)
            self.passed += not ok
        self.seen += len(batch)
        return out

    def report(self) -> str:
        """One line for the run summary (all tiles so far)."""
        return pass_through_note(self.method, self.passed, self.seen)


def pass_through_note(method: str, passed: int, seen: int) -> str:
    """The summary line for ``passed`` of ``seen`` tiles left unchanged."""
    return (f"stain ({method}): {passed} of {seen} tiles had too little H&E stain and passed "
            "through unchanged")


class StainNormalizedExtractor:
    """An extractor whose batches are stain-normalised first (see `with_stain`)."""

    def __init__(self, extractor, normalizer: StainNormalizer):
        self.extractor = extractor
        self.normalizer = normalizer
        self.name = extractor.name
        self.dim = extractor.dim
        self.config = {**extractor.config, "stain": normalizer.config}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.extractor(self.normalizer(batch))

    def __getattr__(self, item):  # target_mpp, device, ... of the wrapped extractor
        if item in ("extractor", "normalizer"):
            raise AttributeError(item)
        return getattr(self.extractor, item)


def with_stain(extractor, stain: str | StainNormalizer | None, reference=None):
    """``extractor`` with stain normalisation in front, or unchanged for ``None``/``"none"``."""
    if stain is None or (isinstance(stain, str) and stain.lower() == "none"):
        return extractor
    norm = stain if isinstance(stain, StainNormalizer) else StainNormalizer(stain, reference)
    return StainNormalizedExtractor(extractor, norm)
