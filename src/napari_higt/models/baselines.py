"""MIL baselines on the x10 patch features: ABMIL (gated attention) and mean pooling.

They read the same graph as HIGT, use only the patch nodes (level 2) and return the same
:class:`HIGTOutput` (``mil_attention`` and ``node_importance`` per node, 0 off the patches).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from napari_higt.models.higt import HIGTOutput, graph_inputs, minmax_per_group
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model


def _patch_nodes(data: object) -> tuple[Tensor, Tensor, Tensor, int, int]:
    x, level, _, _, _, batch, n_graphs = graph_inputs(data)
    pat = (level == 2).nonzero().view(-1)
    return x, pat, batch, n_graphs, x.size(0)


def _importance(att: Tensor, pat: Tensor, batch: Tensor, n_graphs: int, n: int) -> tuple[Tensor, Tensor]:
    """Scatter patch attention to all nodes; importance = attention min-max scaled per slide."""
    full = att.new_zeros(n)
    full[pat] = att
    imp = att.new_zeros(n)
    imp[pat] = minmax_per_group(att.detach(), batch[pat], n_graphs)
    return full, imp


@register_model("abmil")
class ABMIL(nn.Module):
    """Gated attention MIL (Ilse et al. 2018).

    ``h = ReLU(W x)``, ``a = softmax(w^T (tanh(V h) * sigmoid(U h)))`` per slide,
    ``logits = head(sum a h)``.

    Parameters
    ----------
    in_dim, n_classes : int
    hidden : int
        Embedding size; the attention MLP uses ``hidden // 2``.
    dropout : float
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.standardize = FeatureStandardizer(in_dim)
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.att_v = nn.Linear(hidden, hidden // 2)
        self.att_u = nn.Linear(hidden, hidden // 2)
        self.att_w = nn.Linear(hidden // 2, 1)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, data: object) -> HIGTOutput:
        """Classify; returns logits and the per-patch attention."""
        x, pat, batch, n_graphs, n = _patch_nodes(data)
        h = self.embed(self.standardize(x[pat]))
        bp = batch[pat]
        score = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h))).squeeze(-1)
        a = softmax(score, bp, num_nodes=n_graphs)
        z = scatter(h * a.unsqueeze(-1), bp, 0, dim_size=n_graphs, reduce="sum")
        full, imp = _importance(a, pat, batch, n_graphs, n)
        return HIGTOutput(logits=self.head(z), node_importance=imp, mil_attention=full)


@register_model("mean")
class MeanMIL(nn.Module):
    """Mean pooling of embedded patch features; uniform attention ``1 / n_patches``."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.standardize = FeatureStandardizer(in_dim)
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, data: object) -> HIGTOutput:
        """Classify; the attention is uniform over each slide's patches."""
        x, pat, batch, n_graphs, n = _patch_nodes(data)
        bp = batch[pat]
        z = scatter(self.embed(self.standardize(x[pat])), bp, 0, dim_size=n_graphs, reduce="mean")
        count = torch.bincount(bp, minlength=n_graphs).to(x.dtype).clamp(min=1)
        full, imp = _importance(1.0 / count[bp], pat, batch, n_graphs, n)
        return HIGTOutput(logits=self.head(z), node_importance=imp, mil_attention=full)
