"""CLAM-SB: single-branch clustering-constrained attention MIL.

Lu, Williamson, Chen, Chen, Barbieri, Mahmood, "Data-efficient and weakly supervised
computational pathology on whole-slide images", Nature Biomedical Engineering 5, 555-570
(2021). Gated attention pooling (as ABMIL) over embedded instances, plus instance-level
clustering: for every class ``c`` a small instance classifier learns to tell the ``k``
highest-attended instances (positive evidence when the bag is of class ``c``; negative
otherwise, the "out-of-class" term of mutually exclusive subtypes) from the ``k`` lowest
(negative evidence of the bag's class).

Deviations: the instance loss is cross-entropy (CLAM's ``--inst_loss ce`` option) rather than
the smooth top-1 SVM of its default; ``k = min(k_sample, n // 2)`` per bag so that bags with
fewer than ``2 k_sample`` instances (median ~30 here) still contribute; the weighting CLAM
writes ``0.7 bag + 0.3 instance`` is returned as ``aux_loss = 0.3 / 0.7 * instance`` so that the
engine's loss ``CE + aux_loss`` is CLAM's loss divided by 0.7. Batches of several bags are
processed at once (the paper uses one bag per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax, to_dense_batch

from napari_higt.models.bag import bag_inputs, bag_labels, on_nodes
from napari_higt.models.higt import HIGTOutput
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model

__all__ = ["CLAMSB"]


@register_model("clam_sb")
class CLAMSB(nn.Module):
    """CLAM single branch.

    Parameters
    ----------
    in_dim, n_classes : int
    hidden : int
        Instance embedding size (CLAM "small": 512); the attention MLP uses ``hidden // 2``.
    dropout : float
    k_sample : int
        Instances taken from each end of the attention ranking for the instance loss (8).
    inst_weight : float
        CLAM's ``1 - bag_weight`` (0.3).
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.1,
                 k_sample: int = 8, inst_weight: float = 0.3):
        super().__init__()
        if not 0 <= inst_weight < 1:
            raise ValueError(f"inst_weight must be in [0, 1), got {inst_weight}")
        self.n_classes, self.k_sample, self.inst_weight = n_classes, k_sample, inst_weight
        self.standardize = FeatureStandardizer(in_dim)
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.att_v = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.Tanh(), nn.Dropout(dropout))
        self.att_u = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.Sigmoid(),
                                   nn.Dropout(dropout))
        self.att_w = nn.Linear(hidden // 2, 1)
        self.head = nn.Linear(hidden, n_classes)
        self.instance_heads = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(n_classes))

    def forward(self, data: object) -> HIGTOutput:
        """Classify; in training mode with labels in ``data.y`` also the instance loss."""
        inp = bag_inputs(data)
        h = self.embed(self.standardize(inp.x))
        score = self.att_w(self.att_v(h) * self.att_u(h)).squeeze(-1)
        a = softmax(score, inp.batch, num_nodes=inp.n_graphs)
        z = scatter(h * a.unsqueeze(-1), inp.batch, 0, dim_size=inp.n_graphs, reduce="sum")
        full, imp = on_nodes(a, inp)
        y = bag_labels(data)
        aux = None
        if self.training and y is not None and self.inst_weight > 0:
            aux = self.inst_weight / (1 - self.inst_weight) * self.instance_loss(
                h, score, inp.batch, inp.n_graphs, y)
        return HIGTOutput(logits=self.head(z), node_importance=imp, mil_attention=full,
                         aux_loss=aux)

    def instance_loss(self, h: Tensor, score: Tensor, batch: Tensor, n_graphs: int,
                      y: Tensor) -> Tensor:
        """Mean cross-entropy of the instance classifiers on the top/bottom-k instances.

        For every bag and class ``c``: the top-k instances are labelled 1 by classifier ``c``
        if the bag is of class ``c`` and 0 otherwise; the bottom-k are labelled 0 by the
        classifier of the bag's class.
        """
        dense_s, mask = to_dense_batch(score.detach(), batch, fill_value=float("nan"),
                                       batch_size=n_graphs)
        dense_h, _ = to_dense_batch(h, batch, batch_size=n_graphs)
        counts = mask.sum(1)
        k_max = int(min(self.k_sample, int(counts.max()) // 2)) if counts.numel() else 0
        if k_max < 1:
            return h.sum() * 0.0
        k_bag = torch.clamp(counts // 2, max=self.k_sample)  # per bag
        top = torch.nan_to_num(dense_s, nan=-torch.inf).topk(k_max, 1).indices
        low = torch.nan_to_num(dense_s, nan=torch.inf).topk(k_max, 1, largest=False).indices
        rank_ok = torch.arange(k_max, device=h.device).unsqueeze(0) < k_bag.unsqueeze(1)
        rows = torch.arange(n_graphs, device=h.device).unsqueeze(1).expand(-1, k_max)
        h_top, h_low = dense_h[rows, top][rank_ok], dense_h[rows, low][rank_ok]  # (M, D)
        bag_top = rows[rank_ok]
        losses = []
        for c, clf in enumerate(self.instance_heads):
            target = (y[bag_top] == c).long()
            losses.append(F.cross_entropy(clf(h_top), target, reduction="none"))
            own = y[bag_top] == c  # bottom-k are negatives of the bag's own class only
            if own.any():
                losses.append(F.cross_entropy(clf(h_low[own]), torch.zeros_like(target[own]),
                                              reduction="none"))
        return torch.cat(losses).mean()
