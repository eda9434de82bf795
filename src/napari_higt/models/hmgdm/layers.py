"""H-MGDM building blocks: diffusion helpers and the two stages of the model.

Stage 1 is the variational context encoder (`EntityEncoder`), stage 2 the conditional latent
graph diffusion decoder (`LatentGraphDiffusionDecoder`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from napari_higt.models.hmgdm.config import HMGDMConfig

__all__ = ["EntityEncoder", "LatentGraphDiffusionDecoder", "sigmoid_beta_schedule", "timestep_embedding", "edge_attr"]


def sigmoid_beta_schedule(timesteps: int = 1000, start: float = 1e-7,
                          end: float = 2e-3) -> torch.Tensor:
    """Sigmoid betas from ``start`` to ``end`` over ``timesteps`` (GeoDiff / H-MGDM code)."""
    betas = torch.sigmoid(torch.linspace(-6, 6, timesteps, dtype=torch.float64))
    return betas * (end - start) + start


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _mlp(i: int, h: int, o: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, o))


def edge_attr(xn: torch.Tensor, pos: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """CHOICE (spec REC): edge features [|x_i - x_j|, ||p_i - p_j||]."""
    s, d = edge_index
    return torch.cat([(xn[s] - xn[d]).abs(), (pos[s] - pos[d]).norm(dim=1, keepdim=True)], 1)


# ---------------------------------------------------------------------------------------
# Stage 1: variational context encoder


class EntityEncoder(nn.Module):
    """GNN encoder: raw entity inputs -> per-node (mean, log-variance) and layer outputs."""

    def __init__(self, cfg: HMGDMConfig):
        super().__init__()
        from torch_geometric.nn import GATv2Conv, GINConv, GINEConv

        h = cfg.hidden
        self.cfg = cfg
        edge_dim = cfg.in_dim + 1 if cfg.edge_features else None
        # Spec: LayerNorm + Linear embedding of the raw node inputs.
        self.embed = nn.Sequential(nn.LayerNorm(cfg.in_dim), nn.Linear(cfg.in_dim, h))
        self.pos_embed = nn.Linear(2, h)  # CHOICE: positions as an additive embedding
        if edge_dim is not None:
            self.edge_embed = nn.Sequential(nn.LayerNorm(edge_dim), nn.Linear(edge_dim, h))
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(cfg.enc_layers):
            if cfg.conv == "gin":
                mlp = _mlp(h, h, h, cfg.dropout)
                conv = GINEConv(mlp, edge_dim=h) if edge_dim else GINConv(mlp, train_eps=True)
            else:
                conv = GATv2Conv(h, h // cfg.heads, heads=cfg.heads,
                                 edge_dim=h if edge_dim else None, add_self_loops=True)
            self.convs.append(conv)
            self.norms.append(nn.LayerNorm(h))
        self.mu = nn.Linear(h, cfg.latent)
        self.logvar = nn.Linear(h, cfg.latent)

    def forward(self, xn: torch.Tensor, pos: torch.Tensor, edge_index: torch.Tensor,
                edge_attr: torch.Tensor | None = None):
        """Return ``(mu, logvar, skips)``; ``skips[l]`` is layer l's output (N, hidden)."""
        h = self.embed(xn) + self.pos_embed(pos)
        e = self.edge_embed(edge_attr) if (self.cfg.edge_features and edge_attr is not None) \
            else None
        skips = []
        for conv, norm in zip(self.convs, self.norms):
            out = conv(h, edge_index, e) if e is not None else conv(h, edge_index)
            h = h + F.gelu(norm(out))  # CHOICE: residual + LayerNorm per layer
            skips.append(h)
        return self.mu(h), self.logvar(h).clamp(-10, 10), skips


# ---------------------------------------------------------------------------------------
# Stage 2: conditional latent graph diffusion decoder


class _CrossLevel(nn.Module):
    """Cross-attention masked -> visible encoder layer, 1-layer GNN, residual MLP."""

    def __init__(self, cfg: HMGDMConfig):
        super().__init__()
        from torch_geometric.nn import GINConv

        h = cfg.hidden
        self.norm_q = nn.LayerNorm(h)
        self.norm_kv = nn.LayerNorm(h)
        self.null_kv = nn.Parameter(torch.zeros(1, 1, h))  # CHOICE: learned null key/value
        self.attn = nn.MultiheadAttention(h, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.gnn = GINConv(_mlp(h, h, h, cfg.dropout), train_eps=True)
        self.norm_g = nn.LayerNorm(h)
        self.mlp = _mlp(h, 2 * h, h, cfg.dropout)
        self.norm_m = nn.LayerNorm(h)

    def forward(self, h, masked, batch, n_graphs, skip_vis, batch_vis, edge_index):
        from torch_geometric.utils import to_dense_batch

        q, qmask = to_dense_batch(self.norm_q(h), batch, batch_size=n_graphs)
        kv, kvmask = to_dense_batch(self.norm_kv(skip_vis), batch_vis, batch_size=n_graphs)
        kv = torch.cat([self.null_kv.expand(n_graphs, -1, -1).to(kv.dtype), kv], 1)
        kvmask = torch.cat([torch.ones(n_graphs, 1, dtype=torch.bool, device=h.device),
                            kvmask], 1)
        att, _ = self.attn(q, kv, kv, key_padding_mask=~kvmask, need_weights=False)
        att = att[qmask]
        h = h + att * masked[:, None].to(att.dtype)  # queries = masked tokens only
        h = h + self.gnn(self.norm_g(h), edge_index)
        return h + self.mlp(self.norm_m(h))


class LatentGraphDiffusionDecoder(nn.Module):
    """Denoiser over all tokens of a graph, conditioned on the encoder's layer outputs."""

    def __init__(self, cfg: HMGDMConfig):
        super().__init__()
        h = cfg.hidden
        self.cfg = cfg
        self.vis_in = nn.Linear(cfg.latent, h)
        self.mask_in = nn.Sequential(nn.LayerNorm(cfg.in_dim), nn.Linear(cfg.in_dim, h))
        self.pos_in = nn.Linear(2, h)
        self.type_embed = nn.Embedding(2, h)  # 0 visible, 1 masked
        self.t_mlp = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h))
        layer = nn.TransformerEncoderLayer(h, cfg.heads, 2 * h, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.joint = nn.TransformerEncoder(layer, cfg.dec_depth, enable_nested_tensor=False)
        self.levels = nn.ModuleList(_CrossLevel(cfg) for _ in range(cfg.enc_layers))
        self.out_norm = nn.LayerNorm(h)
        self.node_head = _mlp(h, h, cfg.in_dim)
        self.pos_head = _mlp(2 * h + 1, h, 1)
        if cfg.edge_features:
            e = cfg.in_dim + 1
            self.edge_in = nn.Sequential(nn.LayerNorm(e), nn.Linear(e, h))
            self.edge_head = _mlp(3 * h, h, e)

    def forward(self, z_vis, x_t, pos_t, masked, t, batch, n_graphs, skips, batch_vis,
                edge_index, e_t=None):
        from torch_geometric.utils import to_dense_batch

        n, h = masked.shape[0], self.cfg.hidden
        tok = torch.zeros(n, h, device=x_t.device, dtype=x_t.dtype)
        tok = tok.index_put((~masked,), self.vis_in(z_vis).to(tok.dtype))
        tok = tok.index_put((masked,), self.mask_in(x_t[masked]).to(tok.dtype))
        temb = self.t_mlp(timestep_embedding(t, h))
        tok = tok + self.pos_in(pos_t) + self.type_embed(masked.long()) + temb[batch]
        # Joint Transformer over each graph's tokens (dense batch = attention within graph).
        dense, dmask = to_dense_batch(tok, batch, batch_size=n_graphs)
        dense = self.joint(dense, src_key_padding_mask=~dmask)
        hid = dense[dmask]
        # U-shape: deepest encoder layer first.
        for level, skip in zip(self.levels, reversed(skips)):
            hid = level(hid, masked, batch, n_graphs, skip, batch_vis, edge_index)
        hid = self.out_norm(hid)
        node = self.node_head(hid)
        # Positions (GeoDiff style): eps_i = sum_j s_ij (p_i - p_j) / deg_i over edges j -> i.
        src, dst = edge_index
        diff = pos_t[dst] - pos_t[src]
        dist = diff.norm(dim=1, keepdim=True)
        s = self.pos_head(torch.cat([hid[dst], hid[src], dist], 1))
        pos_eps = torch.zeros_like(pos_t).index_add_(0, dst, (s * diff).to(pos_t.dtype))
        deg = torch.zeros(n, device=pos_t.device).index_add_(
            0, dst, torch.ones_like(dst, dtype=torch.float))
        pos_eps = pos_eps / deg.clamp(min=1)[:, None]
        edge = None
        if self.cfg.edge_features and e_t is not None:
            edge = self.edge_head(torch.cat([hid[src] + hid[dst], (hid[src] - hid[dst]).abs(),
                                             self.edge_in(e_t)], 1))
        return node, pos_eps, edge
