"""``hmgdm``: patch embeddings from a self-supervised H-MGDM encoder checkpoint.

``get_extractor("hmgdm", encoder="ENCODER.pt")`` loads a checkpoint written by
``napari-higt pretrain`` (``torch.load(weights_only=True)``), turns every RGB tile of a
batch into its SLIC entity graph with the checkpoint's own entity settings, and returns the
encoder's pooled entity means (mean ‖ max, ``2 * latent`` values per tile).

``config`` holds the model and entity configuration and the SHA-1 of the checkpoint file, so
a feature file made with other weights gets another ``extractor_config_hash``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_higt.errors import CheckpointError, FeatureError
from napari_higt.features.base import register_extractor
from napari_higt.io import file_digest

__all__ = ["HMGDMExtractor", "hmgdm_extractor"]


class HMGDMExtractor:
    """Callable ``(B, H, W, 3) uint8 -> (B, dim) float32`` over an H-MGDM encoder."""

    name = "hmgdm"

    def __init__(self, encoder: str | Path | None = None, device: str = "auto",
                 batch_size: int = 32, n_jobs: int = 1, dim: int | None = None,
                 **entity_overrides):
        from napari_higt.devices import resolve_device
        from napari_higt.models.hmgdm import load_hmgdm_checkpoint

        self.device = resolve_device(device)
        self.model, ckpt = load_hmgdm_checkpoint(encoder, map_location=self.device)
        self.path = Path(encoder)
        cfg = self.model.cfg
        entity = dict(cfg.entity)
        for key, value in entity_overrides.items():
            if key not in entity:
                raise FeatureError(f"hmgdm: unknown option {key!r}; entity options are "
                                   f"{sorted(entity)} (plus encoder, device, batch_size, "
                                   "n_jobs, dim)")
            if entity[key] != value:
                raise CheckpointError(
                    f"{self.path}: config mismatch: the encoder was pretrained with "
                    f"{key}={entity[key]!r}, not {value!r}; pretrain another encoder for "
                    "those settings or drop the option")
        self.dim = int(cfg.embed_dim)
        if dim is not None and int(dim) != self.dim:
            raise CheckpointError(f"{self.path}: config mismatch: the encoder gives "
                                  f"{self.dim}-dim embeddings, {dim} were asked for")
        self.entity = entity
        self.batch_size = int(batch_size)
        self.n_jobs = int(n_jobs)
        self.config = {
            "model": cfg.to_dict(),
            "entity": entity,
            "checkpoint_sha1": file_digest(self.path),
            "epochs": int(ckpt.get("epoch", 0)),
        }

    def graphs(self, batch: np.ndarray, keep_label_image: bool = True) -> list:
        """Entity graphs of the tiles with the encoder's entity settings."""
        from napari_higt.graph.entity_batch import entity_graphs

        return entity_graphs(list(batch), n_jobs=self.n_jobs,
                             keep_label_image=keep_label_image, **self.entity)

    def embed_graphs(self, graphs) -> np.ndarray:
        import torch
        from torch_geometric.data import Batch

        out = []
        with torch.no_grad():
            for k in range(0, len(graphs), self.batch_size):
                chunk = []
                for g in graphs[k:k + self.batch_size]:
                    g = g.clone()
                    for key in ("label_image", "centroid"):
                        if key in g:
                            del g[key]
                    chunk.append(g)
                b = Batch.from_data_list(chunk).to(self.device)
                out.append(self.model.embed(b).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[-1] < 3:
            raise FeatureError(f"hmgdm expects a (B, H, W, 3) uint8 batch, got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_graphs(self.graphs(batch[..., :3], keep_label_image=False))

    def __repr__(self) -> str:
        return f"HMGDMExtractor({self.path.name}, dim={self.dim})"


@register_extractor("hmgdm")
def hmgdm_extractor(**config) -> HMGDMExtractor:
    """Factory for the registry: ``get_extractor("hmgdm", encoder="ENCODER.pt", ...)``."""
    return HMGDMExtractor(**config)
