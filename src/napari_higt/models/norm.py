"""Input normalisation: per-feature standardisation that travels with a model's weights, and
a LayerNorm fused with the linear projection that follows it."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

__all__ = ["FeatureStandardizer", "fit_standardizer", "norm_linear"]


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
        # One new (N, C) tensor, divided in place: node features are the largest input.
        return torch.sub(x, self.mean.to(x.dtype)).div_(self.std.to(x.dtype))

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


def _affine_linear(xhat: Tensor, gamma: Tensor, beta: Tensor, weight: Tensor) -> Tensor:
    """``(xhat * gamma + beta) W^T`` as ``xhat (W gamma)^T + W beta``: no (N, C) temporary."""
    return F.linear(xhat, weight * gamma, weight @ beta)


class _NormLinear(Function):
    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor, weight: Tensor,  # noqa: D102
                eps: float) -> Tensor:
        xhat = F.layer_norm(x, (x.size(-1),), eps=eps)
        ctx.save_for_backward(xhat, gamma, beta, weight)
        return _affine_linear(xhat, gamma, beta, weight)

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: ANN205, D102
        xhat, gamma, beta, weight = ctx.saved_tensors
        g2 = g.reshape(-1, g.size(-1))
        p = g2.t() @ xhat.reshape(-1, xhat.size(-1))  # G^T xhat: (out, C)
        g_sum = g2.sum(0)
        # With y = xhat * gamma + beta: dW = G^T y, dgamma = sum_j W * G^T xhat, dbeta = W^T 1G.
        g_weight = p * gamma + torch.outer(g_sum, beta)
        return None, (p * weight).sum(0), g_sum @ weight, g_weight, None


def norm_linear(x: Tensor, norm: nn.LayerNorm, weight: Tensor) -> Tensor:
    """``F.linear(norm(x), weight)``, cheaper in backward when ``x`` needs no gradient.

    The gradient reaching ``norm(x)`` is only needed for the norm's own scale and shift, and
    those follow from ``G^T xhat``, the product the weight gradient needs anyway: backward
    runs one large matrix product instead of two, and only ``xhat`` is kept (not both the
    input and the output of the norm). Used for raw node features, which never need a
    gradient; anything else (a gradient to ``x``, autocast, a norm without an affine part)
    takes the plain path.
    """
    fused = (not x.requires_grad and norm.elementwise_affine and norm.bias is not None
             and len(norm.normalized_shape) == 1
             and not torch.is_autocast_enabled(x.device.type))
    if not fused:
        return F.linear(norm(x), weight)
    if not torch.is_grad_enabled():
        xhat = F.layer_norm(x, (x.size(-1),), eps=norm.eps)
        return _affine_linear(xhat, norm.weight, norm.bias, weight)
    return _NormLinear.apply(x, norm.weight, norm.bias, weight, norm.eps)
