"""What the MIL models share: their instances, per-node outputs and the bag batch.

A MIL model reads *instances*: the patch nodes (level 2) of a slide graph, or every row of a
bag without a graph (``features/bags.py``). :func:`bag_inputs` gives both the same way, so a
model that does not need positions runs on either. Per-instance scores go back onto all
input nodes with :func:`on_nodes` (0 off the instances), as ``HIGTOutput`` requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from napari_higt.models.higt import minmax_per_group

__all__ = ["BagBatch", "BagInputs", "bag_inputs", "bag_labels", "on_nodes"]


@dataclass
class BagBatch:
    """Bags concatenated row-wise: the slim stand-in for a PyG ``Batch`` of bags.

    Attributes
    ----------
    x : Tensor (N, C)
        Instance features of every bag, bag after bag.
    batch : Tensor (N,)
        Bag of every row (non-decreasing).
    y : Tensor (B,) or None
        Class index of every bag.
    num_graphs : int
        Number of bags B (PyG's name, so engine code reads either).
    """

    x: Tensor
    batch: Tensor
    y: Tensor | None = None
    num_graphs: int = 1

    @classmethod
    def from_bags(cls, bags: list[Tensor], y: Tensor | list[int] | None = None) -> BagBatch:
        """Concatenate ``(N_i, C)`` bags (and their labels) into one batch."""
        sizes = torch.tensor([b.size(0) for b in bags])
        batch = torch.repeat_interleave(torch.arange(len(bags)), sizes)
        y = None if y is None else torch.as_tensor(y, dtype=torch.long)
        return cls(torch.cat(bags), batch, y, len(bags))

    def to(self, device: torch.device | str) -> BagBatch:
        """Copy on ``device``."""
        return BagBatch(self.x.to(device), self.batch.to(device),
                        None if self.y is None else self.y.to(device), self.num_graphs)


@dataclass
class BagInputs:
    """The instances of a batch: features, their node ids, bag index, sizes."""

    x: Tensor
    index: Tensor
    batch: Tensor
    n_graphs: int
    n_nodes: int


def bag_inputs(data: object) -> BagInputs:
    """Instances of a slide graph batch (its patch nodes) or of a bag batch (every row)."""
    x = data.x
    n = x.size(0)
    batch = getattr(data, "batch", None)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
        n_graphs = 1
    else:
        n_graphs = int(getattr(data, "num_graphs", 0) or (int(batch.max()) + 1 if n else 1))
    level = getattr(data, "level", None)
    if level is None:
        index = torch.arange(n, device=x.device)
    else:
        index = (level == 2).nonzero().view(-1)
    return BagInputs(x[index], index, batch[index], n_graphs, n)


def on_nodes(att: Tensor, inputs: BagInputs) -> tuple[Tensor, Tensor]:
    """Per-instance attention -> (attention on every node, importance in [0, 1] per slide)."""
    full = att.new_zeros(inputs.n_nodes)
    full[inputs.index] = att
    imp = att.new_zeros(inputs.n_nodes)
    imp[inputs.index] = minmax_per_group(att.detach(), inputs.batch, inputs.n_graphs)
    return full, imp


def bag_labels(data: object) -> Tensor | None:
    """The bag labels of a batch when it carries them (training), else None."""
    y = getattr(data, "y", None)
    return None if y is None else y.view(-1).long()
