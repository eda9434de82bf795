"""Dropout that keeps a one-byte mask for backward instead of a float noise tensor.

On the CPU, ``torch.nn.functional.dropout`` draws a float noise tensor (``bernoulli_`` then
divided by ``1 - p``), multiplies, and autograd keeps the noise: four bytes per element of
every dropped activation, about a tenth of HIGT's training memory. :func:`dropout` draws the
same noise from the same generator (so a seeded run drops the same elements and gives the
same numbers) and keeps only the mask. Elsewhere (CUDA) the fused kernel already keeps a
boolean mask and is used as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

__all__ = ["Dropout", "dropout"]


def _noise(x: Tensor, p: float) -> Tensor:
    """The noise ATen's CPU dropout draws for ``x``: 0 or ``1 / (1 - p)``, same generator."""
    return torch.empty_like(x).bernoulli_(1 - p)


def _scale(mask: Tensor, p: float, dtype: torch.dtype) -> Tensor:
    """The noise again, from its mask (the same bits as the drawn noise after ``div_``)."""
    return mask.to(dtype).div_(1 - p)


class _MaskDropout(Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:  # noqa: D102
        # Exactly the steps of ATen's CPU dropout, so the output is the same to the bit.
        noise = _noise(x, p)
        ctx.save_for_backward(noise.bool())
        ctx.p = p
        return x * noise.div_(1 - p)

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: ANN205, D102
        (mask,) = ctx.saved_tensors
        return g * _scale(mask, ctx.p, g.dtype), None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)`` with a boolean mask kept for backward on the CPU."""
    if not training or p == 0 or x.numel() == 0:
        return x
    if (x.device.type != "cpu" or p >= 1 or not torch.is_grad_enabled()
            or not x.requires_grad):
        return F.dropout(x, p, training)
    return _MaskDropout.apply(x, p)


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` (same parameters and state) using :func:`dropout`."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
