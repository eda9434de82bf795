"""H2-MIL: hierarchical graph MIL with resolution-aware attention and iterative pooling.

Hou, Wang, Zhang, Ye, Tang, Dong, Wang, "H^2-MIL: Exploring hierarchical representation with
heterogeneous multiple instance learning for whole slide image analysis", AAAI 2022. The
slide's hierarchical graph (thumbnail, x5 regions, x10 patches, spatial and scale edges) goes
through two stages of RAConv (resolution-aware graph attention) and IHPool (iterative
hierarchical pooling), then a global mean readout over the pooled nodes and a linear head:
the GNN backbone of HIGT without HIViT and fusion (HIGT paper, Table 3, first row).

Deviations (shared with this project's HIGT, see ``models/raconv.py`` and ``models/ihpool.py``):
IHPool's patch seeds are chosen deterministically along the fitness order instead of at
random; the RAConv stages add a self loop per node (``self_loops=True``; False gives the
loop-free form); inputs are standardised then LayerNorm-ed; each stage is RAConv -> LayerNorm
-> dropout, as in the HIGT code. ``node_importance`` is every final node's exact share of the
predicted-class logit (the head is linear after a mean) rolled back through the pooling and
the RAConv coefficients (:meth:`HIGT.node_importance`).

It needs the graph (positions, parents, edges): training refuses bags without coordinates
for it, naming the formats that carry them (``features/bags.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from napari_higt.models.hgnn import gnn_stage_modules, run_gnn_stages
from napari_higt.models.higt import HIGT, HIGTOutput, graph_inputs
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model

__all__ = ["H2MIL"]


@register_model("h2mil")
class H2MIL(nn.Module):
    """H2-MIL.

    Parameters
    ----------
    in_dim, n_classes : int
    hidden : int
        Size of the graph layers (divisible by ``heads``).
    conv : {"raconv", "raconv+"}
        H2-MIL's GAT-style RAConv (default) or HIGT's GATv2-style RAConv+.
    self_loops : bool
        A self loop per node in RAConv (see the module docstring).
    pool_ratios : sequence of float
        One IHPool stage per entry (see :class:`IHPool`).
    patch_seeds, heads : int
    gnn_dropout, attn_dropout : float
        Dropout after each stage and on the attention coefficients.
    """

    #: reads the slide graph: bags without coordinates cannot feed it
    needs_graph = True

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, conv: str = "raconv",
                 self_loops: bool = True, pool_ratios: tuple[float, ...] | list[float] = (0.5, 0.5),
                 patch_seeds: int = 4, heads: int = 1, gnn_dropout: float = 0.3,
                 attn_dropout: float = 0.0):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
        self.standardize = FeatureStandardizer(in_dim)
        self.in_norm = nn.LayerNorm(in_dim)
        self.convs, self.gnn_norms, self.pools = gnn_stage_modules(
            in_dim, hidden, heads, conv, attn_dropout, self_loops, pool_ratios, patch_seeds)
        self.gnn_dropout = nn.Dropout(gnn_dropout)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, data: object) -> HIGTOutput:
        """Classify slide graph(s); explanations are on the original nodes."""
        x, level, parent, pos, edge_index, batch, n_graphs = graph_inputs(data)
        g = run_gnn_stages(x, level, parent, pos, edge_index, batch, n_graphs, self.convs,
                           self.gnn_norms, self.pools, self.gnn_dropout, in_norm=self.in_norm,
                           in_standardize=self.standardize)
        logits = self.head(scatter(g.x, g.batch, 0, dim_size=n_graphs, reduce="mean"))
        share = self._logit_share(g.x, g.batch, logits.detach().argmax(-1))
        importance = HIGT.node_importance(share, g.stage_graphs, level, batch, n_graphs)
        return HIGTOutput(
            logits=logits, node_importance=importance,
            node_attention=_stack(g.node_attention), ihpool_score=_stack(g.fitness),
            pool_assignment=_stack(g.assignments), edge_attention=g.edge_attention or None)

    def _logit_share(self, h: Tensor, batch: Tensor, pred: Tensor) -> Tensor:
        """Each final node's additive share of its slide's predicted-class logit, centred over
        classes and shifted to >= 0 per slide (no gradient)."""
        contrib = F.linear(h.detach(), self.head.weight)
        ev = contrib.gather(1, pred[batch].unsqueeze(1)).squeeze(1) - contrib.mean(1)
        lo = scatter(ev, batch, 0, dim_size=pred.numel(), reduce="min")
        return ev - lo[batch]


def _stack(rows: list[Tensor]) -> Tensor | None:
    return torch.stack(rows) if rows else None
