"""TransMIL: a transformer over the instances with a pyramid position encoding (PPEG).

Shao, Bian, Chen, Wang, Zhang, Ji, Zhang, "TransMIL: Transformer based correlated multiple
instance learning for whole slide image classification", NeurIPS 2021. Instances are embedded,
the sequence is padded to a square number of tokens by repeating its first instances, a class
token is prepended; transformer layer -> PPEG (depthwise 7x7 + 5x5 + 3x3 convolutions on the
square token grid, plus the identity) -> transformer layer -> LayerNorm -> the class token
-> linear head.

Deviations: exact softmax multi-head attention instead of the Nyström approximation (the same
attention in the limit of many landmarks; the bags here have tens to a few hundred instances,
where exact attention is cheap) and so without Nyström's residual depthwise convolution on
the values; ``hidden`` is 128 with 4 heads by default (the paper: 512 and 8), which gives it
about the parameter count of the other baselines at their 256 and keeps an epoch over a
thousand bags within seconds on a CPU; inputs are standardised per feature. The bags of a batch are processed one grid size at a time (no padding tokens), which
gives exactly the per-bag result (tested). The node attention is the class token's attention to each instance
in the last layer, averaged over heads, summed over the copies of a repeated instance and
renormalised to sum to 1 per bag.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from napari_higt.models.bag import bag_inputs, on_nodes
from napari_higt.models.higt import HIGTOutput
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model

__all__ = ["TransMIL"]


class _Attention(nn.Module):
    """Pre-norm multi-head self-attention with a residual connection."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden={dim} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, first_only: bool = False) -> tuple[Tensor, Tensor]:
        """``x + attention(norm(x))`` and the attention (B, heads, T_q, T).

        ``first_only``: only the first token's output (and its attention row) is computed,
        from the keys and values of every token: all the last layer's class token needs.
        """
        b, t, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, dh).unbind(2)
        if first_only:
            x, q = x[:, :1], q[:, :1]
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, d_h)
        att = (q @ k.transpose(-1, -2) / math.sqrt(dh)).softmax(-1)
        o = F.dropout(att, self.dropout, self.training) @ v
        return x + self.out(o.transpose(1, 2).reshape(b, x.size(1), d)), att


class _PPEG(nn.Module):
    """Pyramid position encoding generator: ``x + dw7(x) + dw5(x) + dw3(x)`` on the grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, 1, k // 2, groups=dim)
                                   for k in (7, 5, 3))

    def forward(self, grid: Tensor) -> Tensor:  # (B, D, S, S)
        # The identity and the three depthwise kernels, centred, add up to one 7x7 kernel:
        # one convolution instead of three (the same sum; on CPU each call has a high cost).
        k7, k5, k3 = (c.weight for c in self.convs)
        kernel = k7 + F.pad(k5, (1, 1, 1, 1)) + F.pad(k3, (2, 2, 2, 2))
        kernel = kernel + F.pad(torch.ones_like(k3[..., :1, :1]), (3, 3, 3, 3))
        bias = sum(c.bias for c in self.convs)
        return F.conv2d(grid, kernel, bias, padding=3, groups=grid.size(1))


@register_model("transmil")
class TransMIL(nn.Module):
    """TransMIL.

    Parameters
    ----------
    in_dim, n_classes : int
    hidden : int
        Token size (divisible by ``heads``).
    heads : int
        Attention heads (the paper: 8).
    dropout : float
        Dropout on the attention weights and the attention output (the paper: 0.1).
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.1,
                 heads: int = 4):
        super().__init__()
        self.hidden = hidden
        self.standardize = FeatureStandardizer(in_dim)
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.layer1 = _Attention(hidden, heads, dropout)
        self.ppeg = _PPEG(hidden)
        self.layer2 = _Attention(hidden, heads, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, data: object) -> HIGTOutput:
        """Classify; ``mil_attention`` is the class token's last-layer attention."""
        inp = bag_inputs(data)
        h = self.embed(self.standardize(inp.x))
        counts = torch.bincount(inp.batch, minlength=inp.n_graphs)
        start = torch.cumsum(counts, 0) - counts
        side = torch.ceil(torch.sqrt(counts.clamp(min=1).double())).long()
        logits = h.new_zeros(inp.n_graphs, self.head.out_features)
        a = h.new_zeros(h.size(0))
        # Bags of one grid size at a time: no padding, no masks, each bag exactly as alone.
        for s in torch.unique(side).tolist():
            bags = (side == s).nonzero().view(-1)
            n_b = counts[bags].clamp(min=1).unsqueeze(1)
            # token t repeats instance t mod n (the paper's padding to a square)
            inst = start[bags].unsqueeze(1) + torch.arange(s * s, device=h.device) % n_b
            x = torch.cat([self.cls_token.expand(bags.numel(), -1, -1), h[inst]], 1)
            x, _ = self.layer1(x)
            grid = x[:, 1:].transpose(1, 2).reshape(bags.numel(), self.hidden, s, s)
            x = torch.cat([x[:, :1], self.ppeg(grid).flatten(2).transpose(1, 2)], 1)
            x, att = self.layer2(x, first_only=True)
            logits[bags] = self.head(self.norm(x[:, 0])).to(logits.dtype)
            # class token -> tokens (mean over heads), summed onto the instances they repeat
            a.index_add_(0, inst.reshape(-1), att[:, :, 0, 1:].mean(1).reshape(-1).to(a.dtype))
        total = torch.zeros(inp.n_graphs, dtype=a.dtype, device=a.device).index_add_(
            0, inp.batch, a)
        a = a / total.clamp(min=torch.finfo(a.dtype).tiny)[inp.batch]
        full, imp = on_nodes(a, inp)
        return HIGTOutput(logits=logits, node_importance=imp, mil_attention=full)
