"""The pointwise FFN of HIViT, ``drop2(lin2(drop1(silu(lin1(x)))))``, run in row chunks.

Written as modules, the FFN of a 64k-patch slide builds about a dozen fresh (N, 2d)
tensors per layer in forward and backward (the hidden activation, its SiLU, the dropout
noise and its scaled copy, their gradients), each larger than the allocator keeps in its
heap (:mod:`.chunks`), so most of the FFN's time goes to faulting in new pages and it grows
faster than the number of tokens. Here forward keeps only ``x``, the hidden activation
``lin1(x)`` and one-byte dropout masks; every other temporary lives for one chunk of rows,
and backward rebuilds the dropped activation chunk by chunk.

The dropout noise is drawn per chunk in the order the modules draw it (hidden, then
output), so a graph that fits in one chunk gets the modules' numbers to the bit; a larger
one gets noise of the same distribution from another stretch of the generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

from napari_higt.models.chunks import row_chunks
from napari_higt.models.dropout import _noise, _scale, dropout

__all__ = ["pointwise_ffn"]


def _drop(t: Tensor, mask: Tensor, p: float) -> Tensor:
    """``t * noise`` in place, with the noise rebuilt from its mask (0 or ``1 / (1 - p)``)."""
    return t.mul_(_scale(mask, p, t.dtype))


class _PointwiseFFN(Function):
    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor,  # noqa: D102
                b2: Tensor | None, p1: float, p2: float) -> Tensor:
        n = x.size(0)
        h = x.new_empty(n, w1.size(0))
        y = x.new_empty(n, w2.size(0))
        m1 = torch.empty(h.shape, dtype=torch.bool) if p1 > 0 else None
        m2 = torch.empty(y.shape, dtype=torch.bool) if p2 > 0 else None
        for i, j in row_chunks(n, h.size(1), h.element_size()):
            hc = torch.matmul(x[i:j], w1.t(), out=h[i:j])
            if b1 is not None:
                hc += b1
            a = F.silu(hc)
            if m1 is not None:
                m1[i:j] = _noise(a, p1).bool()
                _drop(a, m1[i:j], p1)
            yc = torch.matmul(a, w2.t(), out=y[i:j])
            if b2 is not None:
                yc += b2
            if m2 is not None:
                m2[i:j] = _noise(yc, p2).bool()
                _drop(yc, m2[i:j], p2)
        ctx.save_for_backward(x, h, w1, w2, m1, m2)
        ctx.p = (p1, p2)
        ctx.has_bias = (b1 is not None, b2 is not None)
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # noqa: ANN205, D102
        x, h, w1, w2, m1, m2 = ctx.saved_tensors
        p1, p2 = ctx.p
        need_x = ctx.needs_input_grad[0]
        gx = torch.empty_like(x) if need_x else None
        gw1, gw2 = torch.zeros_like(w1), torch.zeros_like(w2)
        gb1 = h.new_zeros(h.size(1)) if ctx.has_bias[0] else None
        gb2 = gy.new_zeros(gy.size(1)) if ctx.has_bias[1] else None
        for i, j in row_chunks(x.size(0), h.size(1), h.element_size()):
            g = gy[i:j]
            if m2 is not None:
                g = _drop(g.clone(), m2[i:j], p2)
            a = F.silu(h[i:j])
            if m1 is not None:
                _drop(a, m1[i:j], p1)
            gw2.addmm_(g.t(), a)
            if gb2 is not None:
                gb2 += g.sum(0)
            ga = g @ w2
            if m1 is not None:
                _drop(ga, m1[i:j], p1)
            gh = torch.ops.aten.silu_backward(ga, h[i:j])
            gw1.addmm_(gh.t(), x[i:j])
            if gb1 is not None:
                gb1 += gh.sum(0)
            if need_x:
                torch.matmul(gh, w1, out=gx[i:j])
        return gx, gw1, gb1, gw2, gb2, None, None


def pointwise_ffn(x: Tensor, lin1: nn.Linear, p1: float, lin2: nn.Linear, p2: float,
                  training: bool) -> Tensor:
    """``dropout(lin2(dropout(silu(lin1(x)), p1)), p2)`` over the rows of ``x`` (N, d).

    Parameters
    ----------
    x : Tensor (N, d)
        Tokens (already normalised).
    lin1, lin2 : nn.Linear
        The expansion ``d -> k d`` and the projection back ``k d -> d``.
    p1, p2 : float
        Dropout on the hidden activation and on the output (used only in training).
    training : bool

    Returns
    -------
    Tensor (N, d)
        The same values and gradients as the module form (see the module docstring for
        the dropout noise); chunked on the CPU, the module form elsewhere (CUDA, autocast).
    """
    p1, p2 = (p1, p2) if training else (0.0, 0.0)
    if (x.device.type != "cpu" or x.dim() != 2 or max(p1, p2) >= 1
            or torch.is_autocast_enabled(x.device.type)):
        h = dropout(F.silu(lin1(x)), p1, training)
        return dropout(lin2(h), p2, training)
    return _PointwiseFFN.apply(x, lin1.weight, lin1.bias, lin2.weight, lin2.bias, p1, p2)
