"""Token attention for HIViT: separable self-attention (MobileViTv2) and full multi-head.

Tokens of several slides are stacked in one (N, d) tensor with a ``batch`` vector; attention
never crosses slides. Both modules return ``(out, context)`` where ``context`` (N,) is one
weight per token summing to 1 per slide: the SSA context scores, or for full attention the
attention each token receives, averaged over queries and heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax, to_dense_batch

from napari_higt.models.dropout import dropout


class SeparableSelfAttention(nn.Module):
    """Separable self-attention, O(N d): one latent query scores every token.

    ``c = softmax_N(X w_q)``, ``v_c = sum_n c_n (X W_k)_n``, ``out = (ReLU(X W_v) * v_c) W_o``.

    Parameters
    ----------
    dim : int
        Token size.
    attn_dropout : float
        Dropout on the context scores.
    """

    def __init__(self, dim: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = nn.Linear(dim, 1 + 2 * dim)  # one fused projection: q (1), k (d), v (d)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """Attend within each slide.

        Parameters
        ----------
        x : Tensor (N, dim)
        batch : Tensor (N,) slide of every token
        num_graphs : int

        Returns
        -------
        out : Tensor (N, dim)
        context : Tensor (N,) context scores (softmax over the tokens of each slide)
        """
        q, k, v = torch.split(self.qkv(x), [1, self.dim, self.dim], dim=-1)
        c = softmax(q.squeeze(-1), batch, num_nodes=num_graphs)
        c_used = dropout(c, self.attn_dropout, self.training)
        if num_graphs == 1:
            # One slide: a vector-matrix product and a broadcast, where the general form
            # builds (and keeps for backward) two more (N, dim) tensors.
            ctx = (c_used.unsqueeze(0) @ k).expand(x.size(0), -1)
        else:
            ctx = scatter(k * c_used.unsqueeze(-1), batch, 0, dim_size=num_graphs,
                          reduce="sum").index_select(0, batch)
        return self.out(F.relu(v) * ctx), c


class FullSelfAttention(nn.Module):
    """Standard multi-head self-attention within each slide, O(N^2) (ablation "w/o SSA").

    Parameters
    ----------
    dim : int
        Token size (divisible by ``heads``).
    heads : int
        Attention heads.
    attn_dropout : float
        Dropout on the attention matrix.
    """

    def __init__(self, dim: int, heads: int = 4, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by full_heads={heads}")
        self.dim, self.heads = dim, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """Attend within each slide; same signature and outputs as the separable module."""
        # to_dense_batch needs tokens grouped by slide; sort (stable) and undo at the end.
        perm = torch.argsort(batch, stable=True)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel(), device=perm.device)
        dense, mask = to_dense_batch(x[perm], batch[perm], batch_size=num_graphs)
        b, n, _ = dense.shape
        h, dh = self.heads, self.dim // self.heads
        q, k, v = self.qkv(dense).view(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) * dh**-0.5
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        attn = torch.nan_to_num(attn)  # slides without tokens: all -inf rows
        out = dropout(attn, self.attn_dropout, self.training) @ v
        out = out.transpose(1, 2).reshape(b, n, self.dim)[mask]
        # Attention received per key: mean over heads and the slide's real queries.
        n_q = mask.sum(1).clamp(min=1).to(attn.dtype)
        received = (attn.mean(1) * mask.unsqueeze(-1)).sum(1) / n_q.unsqueeze(-1)
        return self.out(out)[inv], received[mask][inv]
