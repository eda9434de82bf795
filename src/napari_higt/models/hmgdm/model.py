"""The H-MGDM model (`HMGDM`, `HMGDMOutput`) and the reconstruction error the viewer shows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_higt.models.hmgdm.config import HMGDMConfig
from napari_higt.models.hmgdm.layers import (
    EntityEncoder,
    LatentGraphDiffusionDecoder,
    edge_attr,
    sigmoid_beta_schedule,
)
from napari_higt.models.hmgdm.masking import sample_entity_mask

__all__ = ["HMGDM", "HMGDMOutput", "reconstruction_error"]


@dataclass
class HMGDMOutput:
    """What `HMGDM.forward` returns (one training step's worth)."""

    loss: torch.Tensor
    node_loss: torch.Tensor
    edge_loss: torch.Tensor
    pos_loss: torch.Tensor
    kl_loss: torch.Tensor
    mask: torch.Tensor  # (N,) bool, True = masked target, False = visible condition
    t: torch.Tensor  # (B,) timestep per graph
    pred_node: torch.Tensor  # (N, in_dim) prediction (eps or x0; meaningful on masked rows)
    target_node: torch.Tensor  # (N, in_dim)
    x0_hat: torch.Tensor  # (N, in_dim) reconstructed standardised inputs (masked rows)
    node_error: torch.Tensor  # (N,) mean squared x0 error per entity; NaN on visible ones
    mask_types: list[str] | None = None

    def loss_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in
                ("loss", "node_loss", "edge_loss", "pos_loss", "kl_loss")}


class HMGDM(nn.Module):
    """Entity-masked latent graph diffusion model; `embed` gives patch embeddings."""

    def __init__(self, cfg: HMGDMConfig | dict | None = None):
        super().__init__()
        if cfg is None:
            cfg = HMGDMConfig()
        elif isinstance(cfg, dict):
            cfg = HMGDMConfig.from_dict(cfg)
        cfg.validate()
        self.cfg = cfg
        self.encoder = EntityEncoder(cfg)
        self.decoder = LatentGraphDiffusionDecoder(cfg)
        betas = sigmoid_beta_schedule(cfg.timesteps, cfg.beta_start, cfg.beta_end)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float())
        # CHOICE: standardisation of raw inputs, fitted on the pretraining data.
        self.register_buffer("x_mean", torch.zeros(cfg.in_dim))
        self.register_buffer("x_std", torch.ones(cfg.in_dim))

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    @torch.no_grad()
    def fit_normalizer(self, graphs) -> None:
        """Set the input standardisation from entity graphs (list of Data or tensors)."""
        xs = torch.cat([g.x if hasattr(g, "x") else g for g in graphs], 0).float()
        if xs.shape[1] != self.cfg.in_dim:
            raise ValueError(f"entity features are {xs.shape[1]}-dim, model expects "
                             f"{self.cfg.in_dim}")
        self.x_mean.copy_(xs.mean(0))
        self.x_std.copy_(xs.std(0).clamp(min=1e-3) if len(xs) > 1 else torch.ones_like(
            self.x_std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.x_mean) / self.x_std

    @staticmethod
    def _batch_vectors(data):
        n = data.num_nodes
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=data.x.device)
            ptr = torch.tensor([0, n])
        else:
            ptr = getattr(data, "ptr", None)
            if ptr is None:
                counts = torch.bincount(batch.cpu())
                ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return batch, ptr.cpu(), len(ptr) - 1

    def forward(self, data, mask: torch.Tensor | None = None, t: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                rng: np.random.Generator | None = None) -> HMGDMOutput:
        """One denoising step on a (batched) entity graph.

        ``mask`` (N,) bool and ``t`` (B,) may be given (tests, explanations); otherwise they
        are sampled (dynamic masking, t ~ U{0..T-1} per graph). ``generator`` seeds the
        diffusion and reparameterisation noise, ``rng`` the masks.
        """
        from torch_geometric.utils import subgraph

        cfg = self.cfg
        dev = data.x.device
        batch, ptr, n_graphs = self._batch_vectors(data)
        edge_index = data.edge_index
        types = None
        if mask is None:
            mask, types = sample_entity_mask(edge_index, ptr, rng or np.random.default_rng(),
                                             cfg.mask_ratio_max, cfg.mask_probs, True)
        mask = mask.to(dev).bool()
        if t is None:
            if generator is None:
                t = torch.randint(0, cfg.timesteps, (n_graphs,), device=dev)
            else:
                t = torch.randint(0, cfg.timesteps, (n_graphs,), generator=generator,
                                  device=generator.device)
        t = t.to(dev).long()

        def randn_like(x):
            if generator is None:
                return torch.randn_like(x)
            return torch.randn(x.shape, generator=generator, device=generator.device).to(x)

        x0 = self.normalize(data.x)
        p0 = data.pos.float()
        a = self.alpha_bar[t][batch][:, None]
        sa, s1a = a.sqrt(), (1 - a).sqrt()
        m = mask[:, None]
        eps_x = randn_like(x0)
        eps_p = randn_like(p0)
        x_t = torch.where(m, sa * x0 + s1a * eps_x, x0)
        pos_t = torch.where(m, sa * p0 + s1a * eps_p, p0)

        # Stage 1 on the visible (condition) subgraph only.
        vis = ~mask
        vis_idx = vis.nonzero().flatten()
        sub_ei, _ = subgraph(vis_idx, edge_index, relabel_nodes=True, num_nodes=data.num_nodes)
        e_vis = edge_attr(x0[vis_idx], p0[vis_idx], sub_ei) if cfg.edge_features else None
        mu, lv, skips = self.encoder(x0[vis_idx], p0[vis_idx], sub_ei, e_vis)
        z = mu + (0.5 * lv).exp() * randn_like(mu) if self.training else mu
        kl = 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).mean() if mu.numel() else mu.sum() * 0

        # Stage 2: conditional denoising of the masked entities.
        e_t = e_target = emask = None
        if cfg.edge_features:
            e0 = edge_attr(x0, p0, edge_index)
            emask = mask[edge_index[0]] | mask[edge_index[1]]
            a_e = self.alpha_bar[t][batch[edge_index[1]]][:, None]
            eps_e = randn_like(e0)
            e_t = torch.where(emask[:, None], a_e.sqrt() * e0 + (1 - a_e).sqrt() * eps_e, e0)
            e_target = eps_e if cfg.prediction == "eps" else e0
        node, pos_pred, edge = self.decoder(z, x_t, pos_t, mask, t, batch, n_graphs, skips,
                                            batch[vis_idx], edge_index, e_t)
        node, pos_pred = node.float(), pos_pred.float()
        target = eps_x if cfg.prediction == "eps" else x0
        pos_target = eps_p if cfg.prediction == "eps" else p0
        zero = x0.sum() * 0
        if mask.any():
            node_loss = F.mse_loss(node[mask], target[mask])
            pos_loss = F.mse_loss(pos_pred[mask], pos_target[mask])
        else:
            node_loss = pos_loss = zero
        if edge is not None and emask.any():
            edge_loss = F.mse_loss(edge.float()[emask], e_target[emask])
        else:
            edge_loss = zero
        loss = (cfg.w_node * node_loss + cfg.w_edge * edge_loss + cfg.w_pos * pos_loss
                + cfg.w_kl * kl)

        with torch.no_grad():
            if cfg.prediction == "eps":
                x0_hat = (x_t - s1a * node.detach()) / sa.clamp(min=1e-4)
            else:
                x0_hat = node.detach()
            err = (x0_hat - x0).pow(2).mean(1)
            err = torch.where(mask, err, torch.full_like(err, float("nan")))
        return HMGDMOutput(loss=loss, node_loss=node_loss, edge_loss=edge_loss,
                           pos_loss=pos_loss, kl_loss=kl, mask=mask, t=t, pred_node=node,
                           target_node=target, x0_hat=x0_hat, node_error=err,
                           mask_types=types)

    def encode(self, data) -> torch.Tensor:
        """Per-entity latent means of the whole (unmasked) graph, (N, latent)."""
        x0 = self.normalize(data.x)
        p0 = data.pos.float()
        e = edge_attr(x0, p0, data.edge_index) if self.cfg.edge_features else None
        mu, _, _ = self.encoder(x0, p0, data.edge_index, e)
        return mu

    def embed(self, data) -> torch.Tensor:
        """Patch embeddings (B, 2 * latent): mean ‖ max of the entity means (spec REC)."""
        from torch_geometric.nn import global_max_pool, global_mean_pool

        batch, _, n_graphs = self._batch_vectors(data)
        mu = self.encode(data).float()
        return torch.cat([global_mean_pool(mu, batch, n_graphs),
                          global_max_pool(mu, batch, n_graphs)], 1)


# ---------------------------------------------------------------------------------------
# Explanations for the viewer


@torch.no_grad()
def reconstruction_error(model: HMGDM, graph, n_rounds: int = 8, ratio: float = 0.5,
                         t: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-entity reconstruction error and one sampled mask, as plain numpy arrays.

    Parameters
    ----------
    model : HMGDM (a loaded checkpoint: the decoder is needed, not only the encoder)
    graph : one entity graph (`napari_higt.graph.entities.entity_graph`)
    n_rounds : random masks of ``ratio`` entities each; every entity's error is the mean of
        the standardised-feature MSE of its x0 reconstruction over the rounds where it was
        masked (NaN if it never was; with 8 rounds at 0.5 that is rare)
    t : diffusion step used (default the noisiest, T - 1, where the reconstruction relies
        most on the visible context); CHOICE for the viewer
    seed : makes the result reproducible

    Returns
    -------
    dict with ``error`` (N,) float32, ``mask`` (N,) bool (True = masked in the sampled
    step, False = visible), ``mask_error`` (N,) float32 (that step's error, NaN on visible),
    ``mask_type`` (str). Paint them with ``error[label_image]`` (label -1 = background).
    """
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    g = graph.to(dev)
    n = g.num_nodes
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    tt = torch.full((1,), model.cfg.timesteps - 1 if t is None else int(t), device=dev)
    ptr = torch.tensor([0, n])
    mask, types = sample_entity_mask(g.edge_index, ptr, rng, model.cfg.mask_ratio_max,
                                     model.cfg.mask_probs, True)
    step = model(g, mask=mask, t=tt, generator=gen)
    total = torch.zeros(n, dtype=torch.float64)
    hits = torch.zeros(n, dtype=torch.float64)
    for _ in range(n_rounds):
        k = int(np.clip(round(ratio * n), 1, max(n - 1, 1)))
        m = np.zeros(n, bool)
        m[rng.choice(n, k, replace=False)] = True
        out = model(g, mask=torch.from_numpy(m).to(dev), t=tt, generator=gen)
        e = out.node_error.cpu().double()
        ok = torch.from_numpy(m)
        total[ok] += e[ok]
        hits[ok] += 1
    if was_training:
        model.train()
    err = torch.where(hits > 0, total / hits.clamp(min=1), torch.full_like(total, np.nan))
    return {"error": err.numpy().astype(np.float32),
            "mask": step.mask.cpu().numpy(),
            "mask_error": step.node_error.cpu().numpy().astype(np.float32),
            "mask_type": types[0]}
