"""HIGT: hierarchical interaction graph-transformer, and its output contract ``HIGTOutput``.

Pipeline (``specs/higt_spec.md``): LayerNorm(x) -> [RAConv(+) -> LayerNorm -> dropout ->
IHPool] x 2 -> HIViT (L blocks of PL, BI, RL) on the pooled region and patch tokens -> fusion
with the thumbnail -> mean -> linear head.

Every explanation tensor is indexed by the ORIGINAL node order of the input graph: scores
computed on pooled nodes are mapped back through the composed pooling assignments.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from napari_higt.errors import GraphError
from napari_higt.models.dropout import Dropout
from napari_higt.models.hgnn import gnn_stage_modules, run_gnn_stages
from napari_higt.models.hivit import HIViTBlock
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model

REQUIRED_FIELDS = ("x", "level", "parent_index", "pos", "edge_index")


@dataclass
class HIGTOutput:
    """What a model returns. Per-node tensors are indexed like ``batch.x`` (original order).

    Attributes
    ----------
    logits : Tensor (B, n_classes)
        Unnormalised class scores (train with cross-entropy).
    node_importance : Tensor (N,)
        The default heatmap, in [0, 1], normalised per slide and level (see
        :meth:`HIGT.node_importance`; for the baselines: the MIL attention).
    node_attention : Tensor (n_layers, N, heads) or None
        RAConv(+) coefficients summed over each node's outgoing edges ("how much the node
        feeds its neighbours"); layer 2 runs on the stage-1 pooled graph and is mapped back.
    ihpool_score : Tensor (n_stages, N) or None
        IHPool fitness of the node (stage 1) or of the pooled node it belongs to (stage 2).
    pool_assignment : Tensor (n_stages, N) or None
        Pooled node id (in that stage's output order) of every original node.
    ssa_context_score : Tensor (n_blocks, 2, N) or None
        HIViT attention context score per block; ``[:, 0]`` region tokens, ``[:, 1]`` patch
        tokens, mapped back to the original nodes of that level (0 on the other levels).
    bi_region_to_patch : Tensor (n_blocks, N) or None
        Norm of the region contribution ``SE(R)R`` added to the node's patch token.
    bi_patch_to_region : Tensor (n_blocks, N) or None
        Norm of the patch contribution ``SE(P_bar)P_bar`` added to the node's region token
        (zeros with ``interaction="r2p"``).
    mil_attention : Tensor (N,) or None
        Baselines only: attention weight of each patch (sums to 1 per slide; 0 off level 2).
    edge_attention : list of Tensor (E_l, heads) or None
        Per-edge combined coefficients of each layer, on that layer's graph (layer 1: the
        input ``edge_index``).
    aux_loss : Tensor () or None
        A training-only loss term the engine adds to the cross-entropy (CLAM's instance
        clustering loss); None for models without one.
    """

    logits: Tensor
    node_importance: Tensor
    node_attention: Tensor | None = None
    ihpool_score: Tensor | None = None
    pool_assignment: Tensor | None = None
    ssa_context_score: Tensor | None = None
    bi_region_to_patch: Tensor | None = None
    bi_patch_to_region: Tensor | None = None
    mil_attention: Tensor | None = None
    edge_attention: list[Tensor] | None = None
    aux_loss: Tensor | None = None

    def detach(self) -> HIGTOutput:
        """Copy with every tensor detached (for storing or painting)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                v = v.detach()
            elif isinstance(v, list):
                v = [t.detach() for t in v]
            out[f.name] = v
        return HIGTOutput(**out)


def graph_inputs(data: object) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, int]:
    """Fields of a PyG ``Data``/``Batch`` the models read, with the batch vector filled in.

    Raises
    ------
    GraphError
        If a field of ``docs/contracts.md`` is missing.
    """
    missing = [f for f in REQUIRED_FIELDS if getattr(data, f, None) is None]
    if missing:
        raise GraphError(
            f"the slide graph lacks the field(s) {', '.join(missing)}; build it with "
            "napari_higt.graph (HierarchicalGraph.to_pyg())"
        )
    x = data.x
    batch = getattr(data, "batch", None)
    if batch is None:
        batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        num_graphs = 1
    else:
        num_graphs = int(getattr(data, "num_graphs", 0) or (int(batch.max()) + 1))
    pos = data.pos.to(device=x.device, dtype=x.dtype)  # positions follow the feature dtype
    return x, data.level, data.parent_index, pos, data.edge_index, batch, num_graphs


def minmax_per_group(score: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """Scale ``score`` to [0, 1] within each group; constant groups become 1."""
    lo = scatter(score, group, 0, dim_size=n_groups, reduce="min")[group]
    hi = scatter(score, group, 0, dim_size=n_groups, reduce="max")[group]
    span = hi - lo
    return torch.where(span > 0, (score - lo) / span.clamp(min=torch.finfo(score.dtype).tiny),
                       torch.ones_like(score))


@register_model("higt")
class HIGT(nn.Module):
    """The HIGT model.

    Parameters
    ----------
    in_dim : int
        Node feature size C.
    n_classes : int
        Output classes.
    hidden : int
        Hidden size of the GNN and HIViT (official code: 1024; 256 is a CPU-friendly default).
    conv : {"raconv+", "raconv"}
        RAConv+ (GATv2-style, paper) or RAConv (GAT-style, H2-MIL / official code).
    self_loops : bool
        Add a self loop to every input node of the first RAConv(+) (the second stage's graph
        has them already: IHPool contracts ``A + I``). A deviation from the spec and the
        official code, on in the ``"paper"`` preset: without it a node's own features reach
        its next representation only through its neighbours (see :mod:`.raconv`).
    attention : {"separable", "full"}
        HIViT token attention (Table 3 "w/o SSA" = full).
    interaction : {"bi", "r2p"}
        Bidirectional interaction or region -> patch only (Table 3 "w/o BI").
    r2p_mode : {"add", "average"}
        Region -> patch as the paper (add) or the official code (average).
    fusion : bool
        Fuse thumbnail + GNN tokens with the HIViT tokens (False: Table 3 "w/o Fusion").
    pool_ratios : sequence of float
        One IHPool stage per entry (see :class:`IHPool`); each stage is preceded by a RAConv.
    patch_seeds : int
        Patch clusters per region cluster in IHPool.
    n_blocks, block_layers : int
        HIViT blocks and attention+FFN layers per level block.
    heads, full_heads : int
        RAConv heads (concatenated; ``hidden`` must be divisible) and heads of the full
        attention ablation.
    dropout, attn_dropout, gnn_dropout : float
        Dropout in HIViT/fusion, on attention coefficients, and after each GNN stage.
    ffn_ratio : int
        FFN expansion in HIViT.
    gnn_checkpoint : bool
        Recompute the GNN stages in backward instead of keeping their intermediate tensors
        (same outputs and gradients; less training memory on big slides, slower backward).
    """

    #: reads the slide graph: bags without coordinates cannot feed it
    needs_graph = True

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden: int = 256,
        conv: str = "raconv+",
        self_loops: bool = True,
        attention: str = "separable",
        interaction: str = "bi",
        r2p_mode: str = "add",
        fusion: bool = True,
        pool_ratios: tuple[float, ...] | list[float] = (0.5, 0.5),
        patch_seeds: int = 4,
        n_blocks: int = 3,
        block_layers: int = 2,
        heads: int = 1,
        full_heads: int = 4,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        gnn_dropout: float = 0.3,
        ffn_ratio: int = 2,
        gnn_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
        self.in_dim, self.n_classes, self.hidden, self.fusion = in_dim, n_classes, hidden, fusion
        self.gnn_checkpoint = bool(gnn_checkpoint)
        self.standardize = FeatureStandardizer(in_dim)
        self.in_norm = nn.LayerNorm(in_dim)
        self.convs, self.gnn_norms, self.pools = gnn_stage_modules(
            in_dim, hidden, heads, conv, attn_dropout, self_loops, pool_ratios, patch_seeds)
        self.gnn_dropout = Dropout(gnn_dropout)
        self.blocks = nn.ModuleList(
            HIViTBlock(
                hidden, interaction, r2p_mode, block_layers, attention, full_heads,
                ffn_ratio, dropout, attn_dropout, update_regions=i < n_blocks - 1,
            )
            for i in range(n_blocks)
        )
        if fusion:
            self.local_norm = nn.LayerNorm(hidden)
            # Token-wise channel mixing (1x1 conv over channels) instead of the official
            # Conv2d over a fixed token axis: works for any number of tokens per slide.
            self.mix = nn.Sequential(
                nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), Dropout(dropout)
            )
        else:
            self.out_norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Spec init: trunc-normal(0.02) for Linear outside the GNN, ones/zeros for norms."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.startswith("convs"):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, data: object, gnn_grad: bool = True) -> HIGTOutput:
        """Classify the slide graph(s) in ``data`` (a PyG ``Data`` or ``Batch``).

        ``gnn_grad=False`` runs the GNN stages without autograd even where gradients are on
        (explanations that differentiate HIViT tokens only keep nothing for the graph layers).

        Returns
        -------
        HIGTOutput
            Logits (B, n_classes) and the explanation tensors, indexed by original node.
        """
        x, level, parent, pos, edge_index, batch, n_graphs = graph_inputs(data)
        n0 = x.size(0)
        level0, batch0 = level, batch
        with torch.set_grad_enabled(torch.is_grad_enabled() and gnn_grad):
            g = run_gnn_stages(x, level, parent, pos, edge_index, batch,
                               n_graphs, self.convs, self.gnn_norms, self.pools,
                               self.gnn_dropout, in_norm=self.in_norm,
                               checkpoint=self.gnn_checkpoint, in_standardize=self.standardize)
        x, level, parent, batch, comp = g.x, g.level, g.parent, g.batch, g.comp
        comps, fits, node_att = g.assignments, g.fitness, g.node_attention
        edge_att, stage_graphs = g.edge_attention, g.stage_graphs

        # ---- HIViT on the pooled tokens --------------------------------------------------
        n_final = x.size(0)
        reg = (level == 1).nonzero().view(-1)
        pat = (level == 2).nonzero().view(-1)
        row = torch.full((n_final,), -1, dtype=torch.long, device=x.device)
        row[reg] = torch.arange(reg.numel(), device=x.device)
        row[pat] = torch.arange(pat.numel(), device=x.device)
        p_parent = row[parent[pat]]
        batch_r, batch_p = batch[reg], batch[pat]
        thumb = torch.empty(n_graphs, dtype=torch.long, device=x.device)
        t_ids = (level == 0).nonzero().view(-1)
        thumb[batch[t_ids]] = t_ids
        regions, patches = x[reg], x[pat]
        p_gnn = patches
        ctx_rows, r2p_rows, p2r_rows = [], [], []
        for block in self.blocks:
            bo = block(regions, patches, p_parent, batch_r, batch_p, n_graphs)
            regions, patches = bo.regions, bo.patches
            ctx_rows.append((bo.ctx_region, bo.ctx_patch))
            r2p_rows.append(bo.region_to_patch)
            p2r_rows.append(bo.patch_to_region)

        # ---- fusion and head -----------------------------------------------------------
        if self.fusion:
            local = self.local_norm(p_gnn + x[thumb[batch_p]])
            tokens = self.mix(torch.cat([local, patches]))
            pooled_vec = scatter(
                tokens, torch.cat([batch_p, batch_p]), 0, dim_size=n_graphs, reduce="mean"
            )
        else:
            pooled_vec = scatter(
                self.out_norm(patches), batch_p, 0, dim_size=n_graphs, reduce="mean"
            )
        logits = self.head(pooled_vec)

        # ---- explanations, back on the original nodes ------------------------------------
        final_level = level[comp]
        final_row = row[comp]
        is_r, is_p = final_level == 1, final_level == 2

        def on_nodes(vals: Tensor, mask: Tensor) -> Tensor:
            """Token scores of one level -> (N,) over the original nodes (0 elsewhere)."""
            out = x.new_zeros(n0)
            idx = mask.nonzero().view(-1)
            out[idx] = vals[final_row[idx]].to(out.dtype)
            return out

        ssa = torch.stack(
            [torch.stack([on_nodes(cr, is_r), on_nodes(cp, is_p)]) for cr, cp in ctx_rows]
        ) if ctx_rows else x.new_zeros(0, 2, n0)
        r2p = torch.stack([on_nodes(v, is_p) for v in r2p_rows]) if r2p_rows else None
        p2r = torch.stack([on_nodes(v, is_r) for v in p2r_rows]) if p2r_rows else None

        # Rollout target on the final tokens: each token's exact additive share of the logit
        # of the predicted class (the head is linear after a mean over tokens), centred over
        # classes and shifted to >= 0 per slide; region tokens take the sum of their patches'.
        evidence = self._token_evidence(tokens if self.fusion else self.out_norm(patches),
                                        logits.detach().argmax(-1), batch_p)
        # Through HIViT (last block first), attention rollout of the separable attention: its
        # attention matrix is rank one (every query reads the context vector sum_n c_n K_n),
        # so with the residual counted as identity, R <- (R + c * sum_slide R) / 2.
        with torch.no_grad():
            for _, cp in reversed(ctx_rows):
                total = scatter(evidence, batch_p, 0, dim_size=n_graphs, reduce="sum")
                evidence = 0.5 * evidence + 0.5 * cp.detach() * total[batch_p]
        final_imp = x.new_zeros(n_final)
        final_imp[pat] = evidence
        if reg.numel():
            final_imp[reg] = scatter(evidence, p_parent, 0, dim_size=reg.numel(), reduce="sum")
        importance = self.node_importance(final_imp, stage_graphs, level0, batch0, n_graphs)
        return HIGTOutput(
            logits=logits,
            node_importance=importance,
            node_attention=torch.stack(node_att) if node_att else None,
            ihpool_score=torch.stack(fits) if fits else None,
            pool_assignment=torch.stack(comps) if comps else None,
            ssa_context_score=ssa,
            bi_region_to_patch=r2p,
            bi_patch_to_region=p2r,
            edge_attention=edge_att,
        )

    def _token_evidence(self, tokens: Tensor, pred: Tensor, batch_p: Tensor) -> Tensor:
        """Share of the predicted-class logit of every patch token (>= 0, no gradient).

        With fusion there are two tokens per pooled patch (the local one and the HIViT one,
        stacked in that order); their shares are summed.
        """
        with torch.no_grad():
            contrib = F.linear(tokens.detach(), self.head.weight)  # (T, n_classes)
            n_p = batch_p.numel()
            if contrib.size(0) == 2 * n_p:
                contrib = contrib[:n_p] + contrib[n_p:]
            ev = contrib.gather(1, pred[batch_p].unsqueeze(1)).squeeze(1) - contrib.mean(1)
            if ev.numel() == 0:
                return ev
            lo = scatter(ev, batch_p, 0, dim_size=pred.numel(), reduce="min")
            return ev - lo[batch_p]

    @staticmethod
    def node_importance(
        final_importance: Tensor,
        stage_graphs: list[tuple[Tensor, Tensor, Tensor, Tensor]],
        level: Tensor,
        batch: Tensor,
        num_graphs: int,
    ) -> Tensor:
        """Attention rollout from the HIViT tokens back to the input nodes.

        ``final_importance`` is per HIViT input token: each output patch token's share of the
        predicted-class logit, rolled back through every HIViT block's separable attention
        (``R <- (R + c * sum_slide R) / 2``, c the block's patch context scores; done in
        :meth:`forward`); region tokens carry the sum of their patches'. From there, walk the
        GNN stages backwards:

        * pooling: a pooled node is the mean of ``f_i x_i`` over its members, so member ``i``
          receives ``|f_i| / |cluster|`` of the cluster's importance;
        * RAConv: node ``v`` feeds node ``u`` with coefficient ``alpha_vu`` (mean over heads),
          so ``v`` receives ``sum_u alpha_vu * importance(u)`` (attention it receives from
          its neighbours, weighted by how important they are). The sum runs over every edge
          the conv used, self loops included: with ``self_loops`` (and on the second stage's
          pooled graph, which always has them) ``v`` also keeps ``alpha_vv * importance(v)``
          of its own output's importance; without them a node is credited only through its
          neighbours.

        The result is min-max scaled to [0, 1] per slide and level (the viewer paints one
        level at a time); the single thumbnail node is 1. Computed without gradients.
        """
        with torch.no_grad():
            imp = final_importance.detach()
            for edge_index, alpha, assign, fitness in reversed(stage_graphs):
                size = torch.bincount(assign, minlength=imp.numel()).to(imp.dtype)
                imp = fitness.detach().abs() * imp[assign] / size[assign]
                a = alpha.detach().mean(-1)
                imp = scatter(a * imp[edge_index[1]], edge_index[0], 0,
                              dim_size=assign.numel(), reduce="sum")
            group = batch * 3 + level
            return minmax_per_group(imp, group, num_graphs * 3)
