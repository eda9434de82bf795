"""MIL baselines on the x10 patch features: ABMIL (gated attention) and mean pooling.

They read the patch nodes (level 2) of the same graph as HIGT, or every row of a bag without
a graph (``models/bag.py``), and return the same :class:`HIGTOutput` (``mil_attention`` and
``node_importance`` per node, 0 off the patches).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from napari_higt.models.bag import bag_inputs, on_nodes
from napari_higt.models.higt import HIGTOutput
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model


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
        inp = bag_inputs(data)
        h = self.embed(self.standardize(inp.x))
        score = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h))).squeeze(-1)
        a = softmax(score, inp.batch, num_nodes=inp.n_graphs)
        z = scatter(h * a.unsqueeze(-1), inp.batch, 0, dim_size=inp.n_graphs, reduce="sum")
        full, imp = on_nodes(a, inp)
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
        inp = bag_inputs(data)
        bp, n_graphs = inp.batch, inp.n_graphs
        z = scatter(self.embed(self.standardize(inp.x)), bp, 0, dim_size=n_graphs, reduce="mean")
        count = torch.bincount(bp, minlength=n_graphs).to(inp.x.dtype).clamp(min=1)
        full, imp = on_nodes(1.0 / count[bp], inp)
        return HIGTOutput(logits=self.head(z), node_importance=imp, mil_attention=full)
