"""RAConv / RAConv+: resolution-aware graph attention over the hierarchical slide graph.

For an edge ``j' -> j`` the coefficient is the SUM (paper Eq. 2) of

* a node-level attention, softmax over the edges that end at ``j`` and whose source lies on
  the same level as ``j'`` (one softmax per target and neighbouring level), and
* a resolution-level attention, softmax over the neighbouring levels present around ``j``,
  scored from the mean of ``j``'s neighbours on that level.

``conv="raconv"`` scores GAT-style (LeakyReLU after the split dot product, H2-MIL and the
official HIGT file); ``conv="raconv+"`` scores GATv2-style (LeakyReLU between the
projections and the attention vector, as the HIGT paper writes it), which makes the ranking of
neighbours depend on the target ("dynamic" attention).

Self loops (``self_loops=True``, on in the ``"paper"`` preset, off in ``"official"``): the spec
and the official code add none, so a node's output is built from its neighbours only and its
own features reach the next representation only second-hand, diluted among its neighbours'.
The GAT lineage RAConv derives from (GAT, GATv2, PyG's ``add_self_loops=True`` default) adds
a loop ``j -> j`` to every node; the official file even has an ``add_self_loops`` argument
that its forward never reads. With the option on, every node that has no loop gets one; the
loop's source is on the target's level, so it joins the same-level node-level softmax (and the
same-level mean of the resolution-level attention), exactly like the loops IHPool's contracted
graph ``S^T (A + I) S`` already gives every pooled node for the second stage. Without it, a
planted informative patch could not be told apart by HIGT at all (see
``tests/models/test_models.py::test_higt_planted_patch_is_top_ranked``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter, softmax

# Node levels of the hierarchical graph (docs/contracts.md); group keys use 3 = number of levels.
N_LEVELS = 3
# GATv2 scores need an (E, heads, channels) temporary; chunking edges under checkpointing keeps
# that temporary bounded instead of storing it for backward (it is recomputed there).
EDGE_CHUNK = 1 << 14


def _gatv2_scores(
    x_src: Tensor, x_dst: Tensor, src: Tensor, dst: Tensor, att: Tensor, slope: float
) -> Tensor:
    """``<att, LeakyReLU(x_src[src] + x_dst[dst])>`` per edge and head: (E, H)."""

    def score(xs: Tensor, xd: Tensor, s: Tensor, d: Tensor, a: Tensor) -> Tensor:
        return (F.leaky_relu(xs.index_select(0, s) + xd.index_select(0, d), slope) * a).sum(-1)

    n_edges = src.numel()
    needs_grad = torch.is_grad_enabled() and (
        x_src.requires_grad or x_dst.requires_grad or att.requires_grad
    )
    if n_edges <= EDGE_CHUNK or not needs_grad:
        if n_edges <= EDGE_CHUNK:
            return score(x_src, x_dst, src, dst, att)
        return torch.cat(
            [
                score(x_src, x_dst, src[i : i + EDGE_CHUNK], dst[i : i + EDGE_CHUNK], att)
                for i in range(0, n_edges, EDGE_CHUNK)
            ]
        )
    return torch.cat(
        [
            checkpoint(
                score, x_src, x_dst, src[i : i + EDGE_CHUNK], dst[i : i + EDGE_CHUNK], att,
                use_reentrant=False,
            )
            for i in range(0, n_edges, EDGE_CHUNK)
        ]
    )


class RAConv(MessagePassing):
    """Resolution-aware attention convolution (RAConv of H2-MIL and RAConv+ of HIGT).

    Parameters
    ----------
    in_channels, out_channels : int
        Input feature size and output size per head.
    heads : int
        Attention heads; outputs are concatenated (``heads * out_channels``).
    variant : {"raconv+", "raconv"}
        GATv2-style scoring (paper) or GAT-style scoring (H2-MIL / official code).
    negative_slope : float
        Slope of the LeakyReLU in the scores.
    dropout : float
        Dropout on the combined edge coefficients.
    self_loops : bool
        Give every node without one a self loop ``j -> j`` (GAT convention; see the module
        docstring for why this deviates from the spec). False: as the spec and the official
        code, a node's output is built from its neighbours only (other levels included
        through the scale edges).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        variant: str = "raconv+",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        self_loops: bool = False,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if variant not in ("raconv+", "raconv"):
            raise ValueError(f"conv must be 'raconv+' or 'raconv', got {variant!r}")
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.variant, self.negative_slope, self.dropout = variant, negative_slope, dropout
        self.self_loops = bool(self_loops)
        hc = heads * out_channels
        self.lin = nn.Linear(in_channels, hc, bias=False)  # W: messages and source scores
        self.lin_res = nn.Linear(in_channels, hc, bias=False)  # U: resolution-level scores
        if variant == "raconv+":
            # GATv2 needs separate target projections (W_dst, U_dst): the sum of the two
            # projections goes through the LeakyReLU before the attention vector.
            self.lin_dst = nn.Linear(in_channels, hc, bias=False)
            self.lin_res_dst = nn.Linear(in_channels, hc, bias=False)
            self.att = nn.Parameter(torch.empty(1, heads, out_channels))
            self.att_res = nn.Parameter(torch.empty(1, heads, out_channels))
        else:
            self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
            self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
            self.att_res_src = nn.Parameter(torch.empty(1, heads, out_channels))
            self.att_res_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.empty(hc))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot for the projections and attention vectors (GAT convention), zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        for name, p in self.named_parameters(recurse=False):
            if name.startswith("att"):
                bound = math.sqrt(6.0 / (p.size(-1) + 1))
                nn.init.uniform_(p, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(
        self, x: Tensor, edge_index: Tensor, level: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Convolve.

        Parameters
        ----------
        x : Tensor (N, in_channels)
        edge_index : Tensor (2, E), int64, source row 0, target row 1
        level : Tensor (N,), int64 in {0, 1, 2}

        Returns
        -------
        out : Tensor (N, heads * out_channels)
        attention : dict of Tensor
            ``alpha`` (the coefficient used, before dropout), ``alpha_node`` and
            ``alpha_res`` (its two summands): (E, heads), per edge of ``edge_index``.
            ``loop_index`` (L,) the nodes that got a self loop added (empty without
            ``self_loops`` or when ``edge_index`` already has a loop on every node) and
            ``alpha_loop`` (L, heads) the combined coefficient of those loops.
        """
        n, h, c = x.size(0), self.heads, self.out_channels
        n_edges = edge_index.size(1)
        if self.self_loops:
            has_loop = torch.zeros(n, dtype=torch.bool, device=x.device)
            has_loop[edge_index[0][edge_index[0] == edge_index[1]]] = True
            loop_index = (~has_loop).nonzero().view(-1)
            edge_index = torch.cat([edge_index, loop_index.unsqueeze(0).expand(2, -1)], 1)
        else:
            loop_index = edge_index.new_zeros(0)
        src, dst = edge_index[0], edge_index[1]
        slope = self.negative_slope
        xw = self.lin(x).view(n, h, c)
        ux = self.lin_res(x).view(n, h, c)

        # One node-level softmax per (target, source level): key = level(src) + 3 * target.
        group = level[src] + N_LEVELS * dst
        gid, ginv = torch.unique(group, return_inverse=True)
        n_groups = gid.numel()
        g_target = torch.div(gid, N_LEVELS, rounding_mode="floor")

        if self.variant == "raconv+":
            e_node = _gatv2_scores(xw, self.lin_dst(x).view(n, h, c), src, dst, self.att, slope)
            # U h_k with h_k the mean raw feature of the group == mean of U x (U is linear).
            uh_k = scatter(ux.index_select(0, src), ginv, 0, dim_size=n_groups, reduce="mean")
            ux_dst = self.lin_res_dst(x).view(n, h, c)
            e_res = (
                F.leaky_relu(uh_k + ux_dst.index_select(0, g_target), slope) * self.att_res
            ).sum(-1)
        else:
            s_src = (xw * self.att_src).sum(-1)
            s_dst = (xw * self.att_dst).sum(-1)
            e_node = F.leaky_relu(s_src[src] + s_dst[dst], slope)
            # <U h_k, b_src> is the group mean of the per-node scalars: no (E, C) gather needed.
            r_src = scatter(
                (ux * self.att_res_src).sum(-1)[src], ginv, 0, dim_size=n_groups, reduce="mean"
            )
            r_dst = (ux * self.att_res_dst).sum(-1)
            e_res = F.leaky_relu(r_src + r_dst[g_target], slope)

        alpha_node = softmax(e_node, ginv, num_nodes=n_groups)
        alpha_res_g = softmax(e_res, g_target, num_nodes=n)  # over the levels around a target
        alpha_res = alpha_res_g.index_select(0, ginv)
        alpha = alpha_node + alpha_res  # Eq. 2: a sum, not a product
        alpha_used = F.dropout(alpha, p=self.dropout, training=self.training)
        out = self.propagate(edge_index, x=xw, alpha=alpha_used, size=(n, n))
        out = out.reshape(n, h * c) + self.bias
        return out, {
            "alpha": alpha[:n_edges],
            "alpha_node": alpha_node[:n_edges],
            "alpha_res": alpha_res[:n_edges],
            "loop_index": loop_index,
            "alpha_loop": alpha[n_edges:],
        }

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:  # noqa: D102
        return x_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}, variant={self.variant!r}, self_loops={self.self_loops})"
        )
