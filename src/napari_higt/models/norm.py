"""Per-feature input standardisation that travels with a model's weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["FeatureStandardizer", "fit_standardizer"]


class FeatureStandardizer(nn.Module):
    """``(x - mean) / std`` per feature, with ``mean`` and ``std`` as buffers.

    Patch descriptors mix scales (fractions, intensities, areas); a model trained on raw
    values sees its largest feature and little else. The statistics are fitted on the
    training slides only (:func:`fit_standardizer`, label-free) and saved in the state dict,
    so a checkpoint standardises new slides exactly as it did its training data. Until
    fitted it is the identity.
    """

    def __init__(self, in_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    @torch.no_grad()
    def fit(self, xs: Iterable[Tensor], min_std: float = 1e-6) -> FeatureStandardizer:
        """Set the statistics from node-feature tensors ``(N_i, C)`` (streamed, float64)."""
        n, s, ss = 0, None, None
        for x in xs:
            x = x.detach().to("cpu", torch.float64)
            if s is None:
                s, ss = x.sum(0), (x * x).sum(0)
            else:
                s, ss = s + x.sum(0), ss + (x * x).sum(0)
            n += x.size(0)
        if not n:
            raise ValueError("cannot fit the input standardisation on zero nodes")
        mean = s / n
        var = (ss / n - mean * mean).clamp(min=0)
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(var.sqrt().clamp(min=min_std).to(self.std))
        return self


def fit_standardizer(model: nn.Module, graphs: Iterable[object]) -> bool:
    """Fit ``model.standardize`` on the node features of ``graphs``; False if it has none."""
    std = getattr(model, "standardize", None)
    if not isinstance(std, FeatureStandardizer):
        return False
    std.fit(g.x for g in graphs)
    return True
