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
the values; ``hidden`` is 256 by default (the paper: 512); inputs are standardised per
feature. Bags of a batch are laid out on one padded grid with masks, which gives exactly the
per-bag result (tested). The node attention is the class token's attention to each instance
in the last layer, averaged over heads, summed over the copies of a repeated instance and
renormalised to sum to 1 per bag.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from napari_higt.models.bag import MILOutput, bag_inputs, on_nodes
from napari_higt.models.norm import FeatureStandardizer

__all__ = ["TransMIL"]


class _Attention(nn.Module):
    """Pre-norm multi-head self-attention with a key mask; returns the attention too."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden={dim} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, d_h)
        s = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        att = s.masked_fill(~keep[:, None, None, :], -torch.inf).softmax(-1)
        o = F.dropout(att, self.dropout, self.training) @ v
        return x + self.out(o.transpose(1, 2).reshape(b, t, d)), att


class _PPEG(nn.Module):
    """Pyramid position encoding generator: ``x + dw7(x) + dw5(x) + dw3(x)`` on the grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, 1, k // 2, groups=dim)
                                   for k in (7, 5, 3))

    def forward(self, grid: Tensor) -> Tensor:  # (B, D, S, S)
        return grid + sum(conv(grid) for conv in self.convs)


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

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.1,
                 heads: int = 8):
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

    def forward(self, data: object) -> MILOutput:
        """Classify; ``mil_attention`` is the class token's last-layer attention."""
        inp = bag_inputs(data)
        h = self.embed(self.standardize(inp.x))
        b, dev = inp.n_graphs, h.device
        counts = torch.bincount(inp.batch, minlength=b)
        side = torch.ceil(torch.sqrt(counts.clamp(min=1).double())).long()  # per bag
        s_max = int(side.max())
        # Token t of bag j (t < side_j^2) repeats instance t mod n_j (the paper's padding) and
        # sits at (t // side_j, t % side_j) of a shared s_max x s_max grid.
        start = torch.cumsum(counts, 0) - counts
        t = torch.arange(s_max * s_max, device=dev)
        r, c = t // s_max, t % s_max
        keep = (r.unsqueeze(0) < side.unsqueeze(1)) & (c.unsqueeze(0) < side.unsqueeze(1))
        local = r.unsqueeze(0) * side.unsqueeze(1) + c.unsqueeze(0)  # token number in its bag
        inst = start.unsqueeze(1) + local % counts.clamp(min=1).unsqueeze(1)  # (B, S*S)
        inst = torch.where(keep, inst, torch.zeros_like(inst))
        tokens = h[inst] * keep.unsqueeze(-1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=dev)
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        key = torch.cat([ones, keep], 1)
        x, _ = self.layer1(x, key)
        grid = (x[:, 1:] * keep.unsqueeze(-1)).transpose(1, 2).reshape(b, self.hidden, s_max, s_max)
        x = torch.cat([x[:, :1], self.ppeg(grid).flatten(2).transpose(1, 2)], 1)
        x, att = self.layer2(x, key)
        logits = self.head(self.norm(x[:, 0]))

        # Class token -> tokens, summed onto the instances the tokens repeat.
        cls_att = att[:, :, 0, 1:].mean(1) * keep  # (B, S*S)
        a = h.new_zeros(h.size(0)).index_add_(0, inst[keep], cls_att[keep].to(h.dtype))
        total = torch.zeros(b, dtype=a.dtype, device=dev).index_add_(0, inp.batch, a)
        a = a / total.clamp(min=torch.finfo(a.dtype).tiny)[inp.batch]
        full, imp = on_nodes(a, inp)
        return MILOutput(logits=logits, node_importance=imp, mil_attention=full)
