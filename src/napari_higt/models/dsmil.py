"""DS-MIL: dual-stream MIL with a critical instance.

Li, Li, Eliceiri, "Dual-stream multiple instance learning network for whole slide image
classification with self-supervised contrastive learning", CVPR 2021. Stream 1 scores every
instance per class and max-pools (the *critical instance* of each class is the top scorer);
stream 2 attends to all instances by the similarity of their queries to the critical
instance's query, ``A = softmax_n(<q_n, q_crit> / sqrt(d))``, pools the values ``b = A^T v`` and
classifies them with a 1-D convolution over the class axis (kernel = the value size).

Deviations: one softmax cross-entropy on the mean of the two streams' logits replaces the sum
of the two streams' binary cross-entropies (the paper also predicts with the mean of the two
streams); values are projected to ``hidden`` (the paper keeps the input size, which makes the
1-D convolution ``C x C x in_dim``); inputs are standardised per feature. The node attention
is ``A`` of the predicted class.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax, to_dense_batch

from napari_higt.models.bag import bag_inputs, on_nodes
from napari_higt.models.higt import HIGTOutput
from napari_higt.models.norm import FeatureStandardizer
from napari_higt.models.registry import register_model

__all__ = ["DSMIL"]


@register_model("dsmil")
class DSMIL(nn.Module):
    """Dual-stream MIL.

    Parameters
    ----------
    in_dim, n_classes : int
    hidden : int
        Size of the values ``v`` (and of the 1-D convolution's kernel).
    query : int
        Size of the queries (the paper: 128).
    dropout : float
        Dropout on the values (the paper's ``dropout_v``).
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.1,
                 query: int = 128):
        super().__init__()
        self.n_classes, self.query = n_classes, query
        self.standardize = FeatureStandardizer(in_dim)
        self.instance = nn.Linear(in_dim, n_classes)
        self.q = nn.Sequential(nn.Linear(in_dim, query), nn.ReLU(), nn.Linear(query, query),
                               nn.Tanh())
        self.v = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU())
        self.fcc = nn.Conv1d(n_classes, n_classes, kernel_size=hidden)

    def forward(self, data: object) -> HIGTOutput:
        """Classify; ``mil_attention`` is the stream-2 attention of the predicted class."""
        inp = bag_inputs(data)
        x, batch, n_graphs = self.standardize(inp.x), inp.batch, inp.n_graphs
        c = self.instance(x)  # (N, C) instance scores, stream 1
        dense_c, _ = to_dense_batch(c, batch, fill_value=-torch.inf, batch_size=n_graphs)
        max_logits = dense_c.max(1).values  # (B, C)
        crit = dense_c.detach().argmax(1)  # (B, C) the critical instance of each class
        dense_x, _ = to_dense_batch(x, batch, batch_size=n_graphs)
        q_crit = self.q(dense_x.gather(1, crit.unsqueeze(-1).expand(-1, -1, x.size(1))))
        q = self.q(x)  # (N, Q)
        sim = (q.unsqueeze(1) * q_crit[batch]).sum(-1) / math.sqrt(self.query)  # (N, C)
        a = softmax(sim, batch, num_nodes=n_graphs)  # over each bag's instances, per class
        b = scatter(a.unsqueeze(-1) * self.v(x).unsqueeze(1), batch, 0, dim_size=n_graphs,
                    reduce="sum")  # (B, C, hidden)
        bag_logits = self.fcc(b).squeeze(-1)  # (B, C)
        logits = 0.5 * (bag_logits + max_logits)
        pred = logits.detach().argmax(-1)
        att = a.gather(1, pred[batch].unsqueeze(1)).squeeze(1)
        full, imp = on_nodes(att, inp)
        return HIGTOutput(logits=logits, node_importance=imp, mil_attention=full)

