"""HIViT blocks: patch-level (PL), bidirectional interaction (BI) and region-level (RL).

Tokens of several slides (and regions with any number of patches) live in flat tensors with
``batch`` and ``parent`` vectors; every per-slide or per-region reduction is a scatter, so
there is no padding and no Python loop over slides or regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from napari_higt.models.dropout import Dropout
from napari_higt.models.ffn import pointwise_ffn
from napari_higt.models.ssa import FullSelfAttention, SeparableSelfAttention


class TransformerLayer(nn.Module):
    """Pre-norm attention + pointwise FFN (1x1 conv == Linear, SiLU), both with residuals."""

    def __init__(
        self,
        dim: int,
        attention: str = "separable",
        full_heads: int = 4,
        ffn_ratio: int = 2,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if attention == "separable":
            self.attn: nn.Module = SeparableSelfAttention(dim, attn_dropout)
        elif attention == "full":
            self.attn = FullSelfAttention(dim, full_heads, attn_dropout)
        else:
            raise ValueError(f"attention must be 'separable' or 'full', got {attention!r}")
        self.norm2 = nn.LayerNorm(dim)
        # Run as one chunked kernel (models.ffn.pointwise_ffn), which reads the parts.
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_ratio * dim),
            nn.SiLU(),
            Dropout(dropout),
            nn.Linear(ffn_ratio * dim, dim),
            Dropout(dropout),
        )
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """Return the updated tokens and the attention context scores (N,)."""
        a, ctx = self.attn(self.norm1(x), batch, num_graphs)
        x = x + self.drop(a)
        lin1, _, drop1, lin2, drop2 = self.ffn
        return x + pointwise_ffn(self.norm2(x), lin1, drop1.p, lin2, drop2.p,
                                 self.training), ctx


class LevelBlock(nn.Module):
    """PL / RL block: ``layers`` attention+FFN layers, then 1x1 conv (Linear) and LayerNorm."""

    def __init__(self, dim: int, layers: int = 2, **kw: object) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, **kw) for _ in range(layers))
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """Return tokens and the context scores averaged over the stacked layers."""
        ctx_sum = x.new_zeros(x.size(0))
        for layer in self.layers:
            x, ctx = layer(x, batch, num_graphs)
            ctx_sum = ctx_sum + ctx
        return self.norm(self.proj(x)), ctx_sum / max(len(self.layers), 1)


class SEGate(nn.Module):
    """Squeeze-and-excitation over feature channels, squeezed per slide.

    Mean over the slide's tokens -> Linear(d, d/4) -> ReLU -> Linear(d/4, d) -> hard-sigmoid;
    one gate per channel and slide, returned per token.
    """

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, max(dim // reduction, 1))
        self.fc2 = nn.Linear(max(dim // reduction, 1), dim)

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Gate (N, d) for tokens ``x`` (N, d) of slides ``batch``."""
        s = scatter(x, batch, 0, dim_size=num_graphs, reduce="mean")
        return F.hardsigmoid(self.fc2(F.relu(self.fc1(s)))).index_select(0, batch)


@dataclass
class BlockOutput:
    """Tokens and explanation scores of one HIViT block (indexed by token)."""

    regions: Tensor
    patches: Tensor
    ctx_region: Tensor
    ctx_patch: Tensor
    region_to_patch: Tensor  # (N_p,) norm of the region contribution added to each patch
    patch_to_region: Tensor  # (N_r,) norm of the patch contribution added to each region


class HIViTBlock(nn.Module):
    """PL -> BI -> RL.

    Parameters
    ----------
    dim : int
        Token size.
    interaction : {"bi", "r2p"}
        Both directions (paper) or region -> patch only (official code, Table 3 "w/o BI").
    r2p_mode : {"add", "average"}
        ``p + SE(R)R[parent]`` (paper Eq. 5) or ``(p + SE(R)R[parent]) / 2`` (official code).
    layers, attention, full_heads, ffn_ratio, dropout, attn_dropout
        Passed to the level blocks.
    update_regions : bool
        False for the last block: its region tokens feed nothing downstream (the head reads
        patch tokens), so patch -> region and RL are left out instead of holding parameters
        that never get a gradient. Its region context scores are then 0.
    """

    def __init__(
        self,
        dim: int,
        interaction: str = "bi",
        r2p_mode: str = "add",
        layers: int = 2,
        attention: str = "separable",
        full_heads: int = 4,
        ffn_ratio: int = 2,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        update_regions: bool = True,
    ) -> None:
        super().__init__()
        if interaction not in ("bi", "r2p"):
            raise ValueError(f"interaction must be 'bi' or 'r2p', got {interaction!r}")
        if r2p_mode not in ("add", "average"):
            raise ValueError(f"r2p_mode must be 'add' or 'average', got {r2p_mode!r}")
        self.interaction, self.r2p_mode = interaction, r2p_mode
        kw = dict(
            attention=attention, full_heads=full_heads, ffn_ratio=ffn_ratio,
            dropout=dropout, attn_dropout=attn_dropout,
        )
        self.patch_block = LevelBlock(dim, layers, **kw)
        self.region_block = LevelBlock(dim, layers, **kw) if update_regions else None
        self.se_region = SEGate(dim)
        self.se_patch = SEGate(dim) if interaction == "bi" and update_regions else None

    def forward(
        self,
        regions: Tensor,
        patches: Tensor,
        parent: Tensor,
        batch_r: Tensor,
        batch_p: Tensor,
        num_graphs: int,
    ) -> BlockOutput:
        """Run one block; ``parent`` (N_p,) is the row in ``regions`` of each patch's region."""
        p_hat, ctx_p = self.patch_block(patches, batch_p, num_graphs)
        # region -> patch (Eq. 5): R' = SE(R) * R, each patch receives its parent's row.
        r_prime = self.se_region(regions, batch_r, num_graphs) * regions
        r2p = r_prime.index_select(0, parent)
        if self.r2p_mode == "average":
            p_new = (p_hat + r2p) / 2
            r2p_score = r2p.norm(dim=-1) / 2
        else:
            p_new = p_hat + r2p
            r2p_score = r2p.norm(dim=-1)
        if self.se_patch is not None:
            # patch -> region (Eq. 6): mean of each region's patch tokens (0 if it has none).
            p_bar = scatter(p_hat, parent, 0, dim_size=regions.size(0), reduce="mean")
            p2r = self.se_patch(p_bar, batch_r, num_graphs) * p_bar
            r_hat = regions + p2r
            p2r_score = p2r.norm(dim=-1)
        else:
            r_hat = regions
            p2r_score = regions.new_zeros(regions.size(0))
        if self.region_block is not None:
            r_new, ctx_r = self.region_block(r_hat, batch_r, num_graphs)
        else:
            r_new, ctx_r = r_hat, regions.new_zeros(regions.size(0))
        return BlockOutput(r_new, p_new, ctx_r, ctx_p, r2p_score, p2r_score)
