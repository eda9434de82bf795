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
from torch_geometric.utils import scatter, softmax

from napari_higt.models.edge_ops import EdgeCSR, edge_spmm, gatv2_score
from napari_higt.models.norm import FeatureStandardizer, norm_linear

# Node levels of the hierarchical graph (docs/contracts.md); group keys use 3 = number of levels.
N_LEVELS = 3


def level_groups(level: Tensor, src: Tensor, dst: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Node-level softmax groups: one per (target, source level) present.

    Returns ``ginv`` (E,), the group of every edge, and ``gid`` (G,), the sorted keys
    ``level(src) + 3 * target`` of the groups (what ``torch.unique`` returns, without a sort:
    the keys are bounded by ``3 n``).
    """
    key = level.index_select(0, src) + N_LEVELS * dst
    present = torch.bincount(key, minlength=N_LEVELS * n) > 0
    slot = torch.cumsum(present, 0) - 1
    return slot.index_select(0, key), present.nonzero().view(-1)


class RAConv(nn.Module):
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
        super().__init__()
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
        self, x: Tensor, edge_index: Tensor, level: Tensor, in_norm: nn.LayerNorm | None = None,
        in_standardize: FeatureStandardizer | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Convolve.

        Parameters
        ----------
        x : Tensor (N, in_channels)
        edge_index : Tensor (2, E), int64, source row 0, target row 1
        level : Tensor (N,), int64 in {0, 1, 2}
        in_norm : nn.LayerNorm, optional
            Normalise ``x`` with it first: the same as passing ``in_norm(x)``, but fused
            with the projections (:func:`~napari_higt.models.norm.norm_linear`).
        in_standardize : FeatureStandardizer, optional
            Standardise ``x`` first (fused with ``in_norm`` the same way).

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
        # One matmul for every projection of x (same products as one Linear each).
        # unbind, not indexing: its backward stacks the parts once instead of one zero-filled
        # full-size gradient per part.
        weight = torch.cat([m.weight for m in self._projections()])
        if in_norm is None:
            proj = F.linear(x if in_standardize is None else in_standardize(x), weight)
        else:
            proj = norm_linear(x, in_norm, weight, in_standardize)
        proj = proj.view(n, -1, h, c).unbind(1)
        xw, ux = proj[0], proj[1]

        # One node-level softmax per (target, source level): key = level(src) + 3 * target.
        ginv, gid = level_groups(level, src, dst, n)
        n_groups = gid.numel()
        g_target = torch.div(gid, N_LEVELS, rounding_mode="floor")
        # Sparse patterns of the aggregations: messages (target <- source), group means
        # (group <- source) and, shared by both backward passes, source <- target order.
        # The source-ordered patterns serve backward only: not built without gradients.
        grad = torch.is_grad_enabled()
        to_src = EdgeCSR.build(src, dst, n, n) if grad else None
        to_dst = EdgeCSR.build(dst, src, n, n)

        if self.variant == "raconv+":
            e_node = gatv2_score(xw, proj[2], src, dst, self.att, slope)
            # U h_k with h_k the mean raw feature of the group == mean of U x (U is linear).
            count = torch.bincount(ginv, minlength=n_groups).clamp(min=1).to(ux.dtype)
            mean_w = count.reciprocal().index_select(0, ginv).unsqueeze(1)
            to_group = EdgeCSR.build(ginv, src, n_groups, n, perm=self._group_order(level, to_dst))
            from_group = (EdgeCSR.build(src, ginv, n, n_groups, perm=to_src.perm) if grad
                          else None)

            def res_score(ux: Tensor, ux_dst: Tensor, att: Tensor) -> Tensor:
                uh_k = edge_spmm(ux, mean_w, to_group, from_group)
                return gatv2_score(uh_k, ux_dst, None, g_target, att, slope)

            # The (groups, C) means are recomputed in backward (one sparse product) rather
            # than kept.
            e_res = (checkpoint(res_score, ux, proj[3], self.att_res, use_reentrant=False,
                                preserve_rng_state=False)
                     if grad else res_score(ux, proj[3], self.att_res))
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
        out = edge_spmm(xw, alpha_used, to_dst, to_src).to(xw.dtype)
        out = out.reshape(n, h * c) + self.bias
        return out, {
            "alpha": alpha[:n_edges],
            "alpha_node": alpha_node[:n_edges],
            "alpha_res": alpha_res[:n_edges],
            "loop_index": loop_index,
            "alpha_loop": alpha[n_edges:],
        }

    def _projections(self) -> list[nn.Linear]:
        """W, U (and W_dst, U_dst for RAConv+), in the order forward splits them."""
        if self.variant == "raconv+":
            return [self.lin, self.lin_res, self.lin_dst, self.lin_res_dst]
        return [self.lin, self.lin_res]

    @staticmethod
    def _group_order(level: Tensor, to_dst: EdgeCSR) -> Tensor | None:
        """Edges sorted by (group, source), reusing the (target, source) order when equal.

        Groups are (target, source level), so the two orders agree whenever levels do not
        decrease along the node order (one slide, and every pooled graph); a batch of
        slides interleaves levels and gets its own sort.
        """
        if bool((level[1:] >= level[:-1]).all()):
            return to_dst.perm
        return None

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}, variant={self.variant!r}, self_loops={self.self_loops})"
        )
