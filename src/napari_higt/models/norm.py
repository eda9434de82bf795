"""Input normalisation: per-feature standardisation that travels with a model's weights, and
a LayerNorm fused with the linear projection that follows it."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

from napari_higt.models.chunks import row_chunks

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

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return _standardized(x, self.mean, self.std)

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


def _standardized(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x - mean) / std``: one new tensor, divided in place (node features are the largest
    input)."""
    return torch.sub(x, mean.to(x.dtype)).div_(std.to(x.dtype))


def _xhat(x: Tensor, mean: Tensor | None, std: Tensor | None, eps: float) -> Tensor:
    """The normalised rows ``layer_norm((x - mean) / std)`` without the affine part."""
    if mean is not None:
        x = _standardized(x, mean, std)
    return F.layer_norm(x, (x.size(-1),), eps=eps)


class _NormLinear(Function):
    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor, weight: Tensor,  # noqa: D102
                eps: float, mean: Tensor | None, std: Tensor | None) -> Tensor:
        # (xhat * gamma + beta) W^T as xhat (W gamma)^T + W beta: no affine (N, C) temporary.
        w, b = weight * gamma, weight @ beta
        out = x.new_empty(x.size(0), weight.size(0))
        for i, j in row_chunks(x.size(0), x.size(1), x.element_size()):
            torch.addmm(b, _xhat(x[i:j], mean, std, eps), w.t(), out=out[i:j])
        ctx.save_for_backward(x, gamma, beta, weight, mean, std)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: ANN205, D102
        x, gamma, beta, weight, mean, std = ctx.saved_tensors
        p = None  # G^T xhat: (out, C), with xhat rebuilt per chunk
        for i, j in row_chunks(x.size(0), x.size(1), x.element_size()):
            xhat = _xhat(x[i:j], mean, std, ctx.eps)
            # The first chunk's product as it is: one chunk gives the unchunked numbers.
            p = g[i:j].t() @ xhat if p is None else p.addmm_(g[i:j].t(), xhat)
        g_sum = g.sum(0)
        # With y = xhat * gamma + beta: dW = G^T y, dgamma = sum_j W * G^T xhat, dbeta = W^T 1G.
        g_weight = p * gamma + torch.outer(g_sum, beta)
        return None, (p * weight).sum(0), g_sum @ weight, g_weight, None, None, None


def norm_linear(x: Tensor, norm: nn.LayerNorm, weight: Tensor,
                standardize: FeatureStandardizer | None = None) -> Tensor:
    """``F.linear(norm(standardize(x)), weight)``, in row chunks when ``x`` needs no gradient.

    The gradient reaching ``norm(x)`` is only needed for the norm's own scale and shift, and
    those follow from ``G^T xhat``, the product the weight gradient needs anyway: backward
    runs one large matrix product instead of two. Neither the standardised features nor
    ``xhat`` (each as large as the input) is stored: forward and backward rebuild them a
    chunk of rows at a time from ``x``, which the caller keeps anyway. Used for raw node
    features, which never need a gradient; anything else (a gradient to ``x``, autocast, a
    norm without an affine part, inputs that are not (N, C)) takes the plain path.
    """
    fused = (not x.requires_grad and x.dim() == 2 and norm.elementwise_affine
             and norm.bias is not None and len(norm.normalized_shape) == 1
             and not torch.is_autocast_enabled(x.device.type))
    if not fused:
        return F.linear(norm(x if standardize is None else standardize(x)), weight)
    mean, std = (None, None) if standardize is None else (standardize.mean, standardize.std)
    return _NormLinear.apply(x, norm.weight, norm.bias, weight, norm.eps, mean, std)
