"""The hierarchical GNN stages ``[RAConv(+) -> LayerNorm -> dropout -> IHPool] x S``.

One function runs the stages and keeps what the explanations need (per-node attention and
fitness on the original nodes, the pooling assignments, the graphs the attention rollout
walks back through), so every model built on this backbone reports them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from torch import Tensor, nn
from torch_geometric.utils import scatter

from napari_higt.models.ihpool import IHPool
from napari_higt.models.raconv import RAConv

__all__ = ["GNNStages", "gnn_stage_modules", "run_gnn_stages"]


def gnn_stage_modules(in_dim: int, hidden: int, heads: int, conv: str, attn_dropout: float,
                      self_loops: bool, pool_ratios: Sequence[float], patch_seeds: int,
                      ) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """(convs, norms, pools): one RAConv(+), LayerNorm and IHPool per pooling ratio."""
    convs, norms, pools = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    d_in = in_dim
    for ratio in pool_ratios:
        convs.append(RAConv(d_in, hidden // heads, heads, conv, dropout=attn_dropout,
                            self_loops=self_loops))
        norms.append(nn.LayerNorm(hidden))
        pools.append(IHPool(hidden, ratio, patch_seeds))
        d_in = hidden
    return convs, norms, pools


@dataclass
class GNNStages:
    """The pooled graph after the last stage plus the per-stage explanation pieces.

    ``comp`` maps every original node to its node in the final graph; ``node_attention``,
    ``fitness`` and ``assignments`` hold one (N,) tensor per stage on the original nodes
    (attention: (N, heads)); ``stage_graphs`` are ``(edges incl. added loops, coefficients,
    assignment, fitness)`` per stage for :meth:`HIGT.node_importance`.
    """

    x: Tensor
    level: Tensor
    parent: Tensor
    pos: Tensor
    edge_index: Tensor
    batch: Tensor
    comp: Tensor
    node_attention: list[Tensor] = field(default_factory=list)
    edge_attention: list[Tensor] = field(default_factory=list)
    fitness: list[Tensor] = field(default_factory=list)
    assignments: list[Tensor] = field(default_factory=list)
    stage_graphs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = field(default_factory=list)


def _conv_norm_dropout(conv: nn.Module, norm: nn.Module, dropout: nn.Module, x: Tensor,
                       edge_index: Tensor, level: Tensor, in_norm: nn.Module | None,
                       in_standardize: nn.Module | None) -> tuple[Tensor, dict[str, Tensor]]:
    h, att = conv(x, edge_index, level, in_norm=in_norm, in_standardize=in_standardize)
    return dropout(norm(h)), att


def run_gnn_stages(x: Tensor, level: Tensor, parent: Tensor, pos: Tensor, edge_index: Tensor,
                   batch: Tensor, n_graphs: int, convs: nn.ModuleList, norms: nn.ModuleList,
                   pools: nn.ModuleList, dropout: nn.Module, in_norm: nn.Module | None = None,
                   checkpoint: bool = False, in_standardize: nn.Module | None = None,
                   ) -> GNNStages:
    """Run every (conv, norm, pool) stage on a batch of slide graphs (see the module doc).

    ``in_norm`` normalises ``x`` inside the first conv (fused with its projections), after
    ``in_standardize`` if given (so neither full-size intermediate is built);
    ``checkpoint`` recomputes each conv -> norm -> dropout in backward instead of keeping
    its intermediate tensors (same numbers and dropout masks; less memory, more time).
    """
    out = GNNStages(x, level, parent, pos, edge_index, batch,
                    torch.arange(x.size(0), device=x.device))
    for i, (conv, norm, pool) in enumerate(zip(convs, norms, pools)):
        args = (conv, norm, dropout, out.x, out.edge_index, out.level,
                in_norm if i == 0 else None, in_standardize if i == 0 else None)
        if checkpoint and torch.is_grad_enabled():
            h, att = torch.utils.checkpoint.checkpoint(_conv_norm_dropout, *args,
                                                       use_reentrant=False)
        else:
            h, att = _conv_norm_dropout(*args)
        # "How much each node feeds its neighbours": sum over its outgoing edges.
        sent = scatter(att["alpha"], out.edge_index[0], 0, dim_size=out.x.size(0), reduce="sum")
        out.node_attention.append(sent[out.comp])
        out.edge_attention.append(att["alpha"])
        pooled = pool(h, out.level, out.parent, out.pos, out.edge_index, out.batch, n_graphs)
        out.fitness.append(pooled.fitness[out.comp])
        loops = att["loop_index"]  # the rollout walks every edge the conv used
        out.stage_graphs.append((
            torch.cat([out.edge_index, loops.unsqueeze(0).expand(2, -1)], 1),
            torch.cat([att["alpha"], att["alpha_loop"]]), pooled.assignment, pooled.fitness))
        out.comp = pooled.assignment[out.comp]
        out.assignments.append(out.comp)
        out.x, out.level, out.parent, out.pos = (pooled.x, pooled.level, pooled.parent_index,
                                                 pooled.pos)
        out.edge_index, out.batch = pooled.edge_index, pooled.batch
    return out
