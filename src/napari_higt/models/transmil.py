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
thousand bags within seconds on a CPU; inputs are standardised per feature. The bags of a batch are processed a few grid sizes
at a time (:func:`pass_groups`): a smaller bag sits in the top-left corner of the larger
grid with zeros around it for the PPEG and its padding tokens masked out of the attention,
which gives exactly the per-bag result (tested). The node attention is the class token's attention to each instance
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

__all__ = ["TransMIL", "pass_groups"]

#: Default :attr:`TransMIL.pass_overhead` (measured on a CPU, one thread: a pass costs about
#: as much as this many padded tokens).
PASS_OVERHEAD = 250.0


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

    def forward(self, x: Tensor, first_only: bool = False, keys: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """``x + attention(norm(x))`` and the attention (B, heads, T_q, T).

        ``first_only``: only the first token's output (and its attention row) is computed,
        from the keys and values of every token: all the last layer's class token needs.
        ``keys`` (B, T) bool: the tokens that may be attended to (None: all); the others
        (padding) get an attention of exactly 0.
        """
        b, t, d = x.shape
        dh = d // self.heads
        y = self.norm(x)
        if first_only:  # the query of the first token only (rows :d of qkv are the queries)
            w, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(y[:, :1], w[:d], bias[:d]).view(b, 1, self.heads, dh)
            k, v = F.linear(y, w[d:], bias[d:]).view(b, t, 2, self.heads, dh).unbind(2)
            x = x[:, :1]
        else:
            q, k, v = self.qkv(y).view(b, t, 3, self.heads, dh).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, d_h)
        logit = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if keys is not None:
            logit = logit.masked_fill(~keys[:, None, None, :], -math.inf)
        att = logit.softmax(-1)
        o = F.dropout(att, self.dropout, self.training) @ v
        return x + self.out(o.transpose(1, 2).reshape(b, x.size(1), d)), att


class _PPEG(nn.Module):
    """Pyramid position encoding generator: ``x + dw7(x) + dw5(x) + dw3(x)`` on the grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, 1, k // 2, groups=dim)
                                   for k in (7, 5, 3))

    def forward(self, grid: Tensor) -> Tensor:  # (B, D, S, S)
        """The encoded grid; ``grid`` in channels-last memory (a view of ``(B, S*S, D)``
        tokens) is the faster layout of the depthwise convolution on a CPU."""
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
        #: estimated cost of one more pass over a grid, in padded tokens (`pass_groups`)
        self.pass_overhead = PASS_OVERHEAD

    def forward(self, data: object) -> HIGTOutput:
        """Classify; ``mil_attention`` is the class token's last-layer attention."""
        inp = bag_inputs(data)
        h = self.embed(self.standardize(inp.x))
        counts = torch.bincount(inp.batch, minlength=inp.n_graphs)
        start = torch.cumsum(counts, 0) - counts
        side = torch.ceil(torch.sqrt(counts.clamp(min=1).double())).long()
        logits = h.new_zeros(inp.n_graphs, self.head.out_features)
        a = h.new_zeros(h.size(0))
        # Bags of a few grid sizes at a time (pass_groups): a bag of side s on a larger
        # S x S grid sits in its top-left s x s corner, zero elsewhere, and the padding
        # tokens are masked out of the attention, so each bag is computed exactly as alone.
        for lo, hi in pass_groups(side.tolist(), self.pass_overhead):
            bags = ((side >= lo) & (side <= hi)).nonzero().view(-1)
            self._grid_pass(h, bags, start[bags], counts[bags], side[bags], hi, logits, a)
        total = torch.zeros(inp.n_graphs, dtype=a.dtype, device=a.device).index_add_(
            0, inp.batch, a)
        a = a / total.clamp(min=torch.finfo(a.dtype).tiny)[inp.batch]
        full, imp = on_nodes(a, inp)
        return HIGTOutput(logits=logits, node_importance=imp, mil_attention=full)

    def _grid_pass(self, h: Tensor, bags: Tensor, start: Tensor, counts: Tensor, side: Tensor,
                   s: int, logits: Tensor, a: Tensor) -> None:
        """The transformer on the bags ``bags`` (sides <= ``s``) on one s x s grid; writes
        their logits and adds their class-token attention onto their instances in ``a``."""
        nb, dev = bags.numel(), h.device
        pos = torch.arange(s * s, device=dev)
        r, c = pos // s, pos % s
        sd = side.unsqueeze(1)
        # token t = r * side + c of a bag repeats instance t mod n (the paper's padding to a
        # square); cells outside the bag's own side x side corner are padding
        inst = start.unsqueeze(1) + (r * sd + c) % counts.clamp(min=1).unsqueeze(1)
        valid = None
        if int(side.min()) < s:
            valid = (r < sd) & (c < sd)  # (nb, s*s)
            keys = torch.cat([valid.new_ones(nb, 1), valid], 1)
        x = torch.cat([self.cls_token.expand(nb, -1, -1), h[inst]], 1)
        x, _ = self.layer1(x, keys=None if valid is None else keys)
        tok = x[:, 1:] if valid is None else x[:, 1:] * valid.unsqueeze(-1).to(x.dtype)
        # (nb, s*s, D) tokens as an (nb, D, s, s) grid in channels-last memory: no copies
        grid = tok.reshape(nb, s, s, self.hidden).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)
        enc = self.ppeg(grid).permute(0, 2, 3, 1).reshape(nb, s * s, self.hidden)
        x = torch.cat([x[:, :1], enc], 1)
        x, att = self.layer2(x, first_only=True, keys=None if valid is None else keys)
        logits[bags] = self.head(self.norm(x[:, 0])).to(logits.dtype)
        # class token -> tokens (mean over heads), summed onto the instances they repeat
        w = att[:, :, 0, 1:].mean(1).to(a.dtype)
        if valid is None:
            a.index_add_(0, inst.reshape(-1), w.reshape(-1))
        else:
            a.index_add_(0, inst[valid], w[valid])


def pass_groups(sides: list[int], overhead: float) -> list[tuple[int, int]]:
    """Consecutive ranges ``(lo, hi)`` of the grid sides of a batch, each computed in one
    pass on a ``hi x hi`` grid: the split with the least estimated cost, ``overhead`` per
    pass plus, per bag, the tokens of the grid it is padded to (``S^2 (1 + S^2 / 256)``:
    the per-token layers, and the attention that grows with the square of the tokens).
    ``overhead=0`` gives one pass per side, ``inf`` one pass for the whole batch."""
    u = sorted(set(sides))
    if not u:
        return []
    if overhead == math.inf:
        return [(u[0], u[-1])]
    m = [sides.count(v) for v in u]
    best = [0.0] + [math.inf] * len(u)  # best[j]: cost of the first j sides
    cut = [0] * (len(u) + 1)
    for j in range(1, len(u) + 1):
        sq = u[j - 1] ** 2
        f = sq * (1 + sq / 256)
        n = 0
        for i in range(j, 0, -1):  # group u[i-1 .. j-1]
            n += m[i - 1]
            cost = best[i - 1] + overhead + n * f
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    out, j = [], len(u)
    while j:
        out.append((u[cut[j]], u[j - 1]))
        j = cut[j]
    return out[::-1]
